"""The model-specific step between a camera frame and the model input, read from the manifest's ``prestep``.

Kinds: ``whole`` (the frame), ``center_crop`` (``fraction`` of the shorter side), ``roi`` (a guide box ``box`` =
[x, y, w, h] as fractions of the frame, as the ASL paper's on-screen box) and ``face`` (the detected faces grown by
``margin``).  Colour and size are then the input spec's business (``edge.data.to_tensor``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.faces import Box, crop, expand_box, make_detector
from edge.manifest import Manifest

KINDS = ("whole", "center_crop", "roi", "face")


def prestep_spec(manifest: Manifest, override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's prestep, or the family's default for manifests written before it existed, plus overrides."""
    spec = dict(manifest.prestep)
    if not spec:
        from edge.families import FAMILIES

        fam = FAMILIES.get(manifest.family)
        spec = dict(fam.prestep) if fam else {"kind": "whole"}
    spec.update(override or {})
    if spec.get("kind") not in KINDS:
        raise EdgeError(f"unknown prestep kind {spec.get('kind')!r}; known: {', '.join(KINDS)}")
    return spec


def parse_roi(text: str) -> list[float]:
    """'x,y,w,h' as fractions of the frame (0..1)."""
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        raise EdgeError(f"--roi wants four fractions x,y,w,h, got {text!r}") from None
    if len(box) != 4 or not all(0 <= v <= 1 for v in box) or box[2] <= 0 or box[3] <= 0:
        raise EdgeError(f"--roi wants four fractions 0..1 (x,y,w,h with w,h > 0), got {text!r}")
    return box


@dataclass
class Prestep:
    """Callable: frame (H, W[, 3] uint8) -> list of (crop, box); an empty list when there is nothing to classify."""

    spec: dict[str, Any]
    detector_spec: str = "auto"
    all_faces: bool = False
    detector: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.spec["kind"] == "face" and self.detector is None:
            self.detector = make_detector(self.detector_spec, int(self.spec.get("min_size", 40)))

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    def region(self, shape: tuple[int, ...]) -> Box | None:
        """The fixed box this prestep looks at (roi / center_crop), for drawing the guide; None otherwise."""
        h, w = shape[:2]
        if self.kind == "roi":
            fx, fy, fw, fh = self.spec.get("box", [0.0, 0.0, 1.0, 1.0])
            box = (int(fx * w), int(fy * h), max(1, int(fw * w)), max(1, int(fh * h)))
            if self.spec.get("square"):
                s = min(box[2], box[3])
                box = (box[0] + (box[2] - s) // 2, box[1] + (box[3] - s) // 2, s, s)
            return box
        if self.kind == "center_crop":
            s = int(min(h, w) * float(self.spec.get("fraction", 1.0)))
            return ((w - s) // 2, (h - s) // 2, s, s)
        if self.kind == "whole":
            return (0, 0, w, h)
        return None

    def crop_faces(self, frame: np.ndarray, faces: list[Box]) -> list[tuple[np.ndarray, Box]]:
        """Detected face boxes grown by the spec's ``margin`` (optionally square) -> (crop, grown box)."""
        margin, square = float(self.spec.get("margin", 0.0)), bool(self.spec.get("square", False))
        boxes = [expand_box(b, frame.shape, margin, square) for b in faces]
        return [(crop(frame, b), b) for b in boxes if b[2] > 0 and b[3] > 0]

    def for_picture(self, img: np.ndarray, from_camera: bool = False) -> tuple[np.ndarray, Box, bool]:
        """The one crop an app classifies in a picture: (crop, box, missed). A camera frame goes through the whole
        prestep; a picture (an upload, a labelled folder) is taken as already framed, its owner having pointed the
        camera: the ASL guide box and the tomato centre crop are for the live camera (a centre crop of data-set-like
        tomato pictures costs 1-3 points: docs/bench/tomato-upload-framing-x86-2core.md). Faces are still found,
        and where none is the whole picture is used and ``missed`` is True."""
        found = self(img) if from_camera or self.kind == "face" else []
        if found:
            return found[0][0], found[0][1], False
        return img, (0, 0, img.shape[1], img.shape[0]), self.kind == "face"

    def __call__(self, frame: np.ndarray) -> list[tuple[np.ndarray, Box]]:
        if frame is None or frame.size == 0:
            return []
        if self.kind == "face":
            faces = self.detector.detect(frame)
            return self.crop_faces(frame, faces if self.all_faces else faces[:1])
        box = self.region(frame.shape)
        assert box is not None
        return [(crop(frame, box), box)]
