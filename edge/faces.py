"""Face detection for the live apps: OpenCV's bundled Haar cascade always, YuNet (cv2.FaceDetectorYN) when given.

Haar is the default because it ships inside the OpenCV wheel (``cv2.data.haarcascades``), so it works offline on
any Pi; YuNet is a better detector but its ONNX file is not shipped by any PyPI package we can install here
(the packages that wrap it download it at run time), so it is used when the user passes ``--detector FILE.onnx``.
"""

from __future__ import annotations

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


def make_detector(spec: str = "haar", min_size: int = 40,
                  search_px: int | None = None) -> HaarDetector | YuNetDetector:
    """'haar' or a path to a YuNet .onnx file."""
    if spec == "haar":
        return HaarDetector(min_size=min_size, search_px=search_px)
    if spec.endswith(".onnx"):
        return YuNetDetector(spec, min_size=min_size)
    raise EdgeError(f"unknown detector '{spec}': use 'haar' or a YuNet .onnx file")


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
