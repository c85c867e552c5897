"""Camera-like 640x480 frames and videos made from data-set images, for tests and benchmarks (no camera needed)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


def place(img: np.ndarray, box: tuple[float, float, float, float] | None = None, height: int = 240,
          size: tuple[int, int] = (480, 640), background: int = 110) -> np.ndarray:
    """An RGB frame (``size`` = H, W) with ``img`` pasted into ``box`` (x, y, w, h fractions) or centred at
    ``height`` pixels tall."""
    frame = np.full((*size, 3), background, dtype=np.uint8)
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img
    if box is not None:
        x, y = int(box[0] * size[1]), int(box[1] * size[0])
        w, h = int(box[2] * size[1]), int(box[3] * size[0])
        s = min(w, h)
        x, y, w, h = x + (w - s) // 2, y + (h - s) // 2, s, s
    else:
        h = min(height, size[0])
        w = min(size[1], max(1, round(rgb.shape[1] * h / rgb.shape[0])))
        x, y = (size[1] - w) // 2, (size[0] - h) // 2
    frame[y : y + h, x : x + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    return frame


def write_video(frames: Iterable[np.ndarray], path: Path | str, fps: float = 15.0) -> Path:
    """RGB frames -> an MJPG .avi OpenCV can read back anywhere (no codec licence questions)."""
    path = Path(path)
    writer = None
    n = 0
    for f in frames:
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (f.shape[1], f.shape[0]))
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {path}")
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        n += 1
    if writer is None:
        raise ValueError("no frames to write")
    writer.release()
    return path
