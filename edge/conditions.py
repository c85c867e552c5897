"""Capture conditions a deployed model meets and a data set rarely shows, simulated on uint8 pictures (gray or
RGB, HxW[xC]) for robustness tests: the attendance bench's query frames, the FER zoo model's test faces.

Each condition is ``f(picture, k) -> picture`` of the same shape and dtype; ``k`` (the picture's index) seeds
what varies, so every model is scored on the same pictures.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def hard_light(frame: np.ndarray, k: int) -> np.ndarray:
    """Hard side light on a picture with the face in the middle: across the face, one half falls to 30 %
    brightness and the other rises to 130 % (the side alternates with k), then gamma 1.4 deepens the shadows."""
    w = frame.shape[1]
    ramp = (0.3 + 1.0 / (1.0 + np.exp(-(np.arange(w) - w / 2) / (w / 40)))).astype(np.float32)
    ramp = (ramp if k % 2 else ramp[::-1]).reshape((1, w) + (1,) * (frame.ndim - 2))
    lit = np.clip(frame.astype(np.float32) * ramp / 255.0, 0, 1) ** 1.4
    return (lit * 255 + 0.5).astype(np.uint8)


def low_light(frame: np.ndarray, k: int) -> np.ndarray:
    """A dim room: a quarter of the light and the sensor noise that comes with it (Gaussian, sigma 4 gray levels,
    seeded by k)."""
    noise = np.random.default_rng(k).normal(0.0, 4.0, frame.shape)
    return np.clip(frame.astype(np.float32) * 0.25 + noise + 0.5, 0, 255).astype(np.uint8)


def out_of_focus(frame: np.ndarray, k: int) -> np.ndarray:
    """A camera focused elsewhere: Gaussian blur with sigma 2 % of the picture's width."""
    return cv2.GaussianBlur(frame, (0, 0), sigmaX=0.02 * frame.shape[1])


def far_away(frame: np.ndarray, k: int) -> np.ndarray:
    """The face a quarter as wide in the camera's frame (24 px across a 96-112 px crop): down to a quarter of the
    width, then back up."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(frame.shape)


def jpeg_20(frame: np.ndarray, k: int) -> np.ndarray:
    """A cheap webcam's or a chat app's compression: JPEG at quality 20."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 20])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    flag = cv2.IMREAD_GRAYSCALE if frame.ndim == 2 else cv2.IMREAD_COLOR
    return cv2.imdecode(buf, flag).reshape(frame.shape)


# What the FER zoo model is scored on beyond its test set (faces already cropped)
FACE_CONDITIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "hard side light": hard_light, "low light": low_light, "out of focus": out_of_focus,
    "far away": far_away, "JPEG quality 20": jpeg_20,
}
