"""Frames from a camera (OpenCV VideoCapture, or Picamera2 on a Pi), a video file or a folder of images.

Frames come out as RGB uint8.  Corrupt and black frames are skipped and counted; a camera that stops answering
(unplugged) is reopened ``retries`` times with a growing pause, then a :class:`CaptureError` says what happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.data import read_image
from edge.errors import EdgeError, InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


class CaptureError(EdgeError):
    """The frame source cannot deliver (no camera, camera gone, unreadable video)."""


@dataclass
class FrameSource:
    """``camera`` (index, device path or stream URL; 'picam' for Picamera2), ``video`` file or ``images`` folder."""

    camera: int | str | None = None
    video: str | None = None
    images: str | None = None
    width: int = 640
    height: int = 480
    retries: int = 3
    retry_pause: float = 0.5
    black_level: float = 4.0  # mean pixel value below which a frame counts as black
    stats: dict[str, int] = field(default_factory=lambda: {"frames": 0, "corrupt": 0, "black": 0, "reopened": 0})
    _cap: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.camera, self.video, self.images)]
        if sum(given) != 1:
            raise CaptureError("give exactly one source: --camera N, --video FILE or --images DIR")

    @property
    def label(self) -> str:
        if self.camera is not None:
            return f"camera {self.camera}"
        return f"video {self.video}" if self.video is not None else f"images {self.images}"

    # ------------------------------------------------------------------ open
    def _open_cv(self, target: int | str) -> Any:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            return None
        if self.camera is not None and isinstance(target, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap

    def _camera_target(self) -> int | str:
        c = self.camera
        return int(c) if isinstance(c, str) and c.isdigit() else c  # type: ignore[return-value]

    def _open(self) -> None:
        if self.video is not None:
            if not Path(self.video).is_file():
                raise CaptureError(f"video not found: {self.video}")
            self._cap = self._open_cv(self.video)
            if self._cap is None:
                raise CaptureError(f"cannot open video {self.video} (corrupt, or a codec OpenCV lacks)")
        elif self.camera == "picam":
            try:
                from picamera2 import Picamera2  # type: ignore[import-not-found]
            except ImportError:
                raise CaptureError("--camera picam needs Picamera2 (apt install python3-picamera2)") from None
            cam = Picamera2()
            cam.configure(cam.create_preview_configuration(main={"size": (self.width, self.height),
                                                                 "format": "RGB888"}))
            cam.start()
            self._cap = cam
        elif self.camera is not None:
            self._cap = self._open_cv(self._camera_target())
            if self._cap is None:
                raise CaptureError(f"no camera answers at {self.camera!r} (is it plugged in? ls /dev/video*; "
                                   "or use --video FILE / --images DIR)")

    # ---------------------------------------------------------------- frames
    def _good(self, frame: Any) -> bool:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0:
            self.stats["corrupt"] += 1
            return False
        if float(frame.mean()) < self.black_level:
            self.stats["black"] += 1
            return False
        return True

    def _image_frames(self) -> Iterator[np.ndarray]:
        root = Path(str(self.images))
        if not root.is_dir():
            raise CaptureError(f"image folder not found: {root}")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CaptureError(f"no images in {root}")
        for p in files:
            try:
                img = read_image(p, "rgb")
            except InputError:
                self.stats["corrupt"] += 1
                continue
            if self._good(img):
                self.stats["frames"] += 1
                yield img

    def frames(self) -> Iterator[np.ndarray]:
        """Yield RGB frames until the source ends; raises CaptureError when a camera is gone for good."""
        if self.images is not None:
            yield from self._image_frames()
            return
        self._open()
        try:
            misses = 0
            while True:
                if self.camera == "picam":
                    frame, ok = self._cap.capture_array(), True
                else:
                    ok, frame = self._cap.read()
                if not ok:
                    if self.video is not None:
                        return  # the video ended
                    misses += 1
                    if misses > self.retries:
                        raise CaptureError(f"{self.label} stopped delivering frames and did not come back after "
                                           f"{self.retries} retries (unplugged?)")
                    self._cap.release()
                    time.sleep(self.retry_pause * misses)
                    self._cap = self._open_cv(self._camera_target())
                    if self._cap is None:
                        self._cap = _Closed()
                    else:
                        self.stats["reopened"] += 1
                    continue
                misses = 0
                if not self._good(frame):
                    continue
                self.stats["frames"] += 1
                if frame.ndim == 2:
                    yield cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
                else:
                    yield frame if self.camera == "picam" else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            (self._cap.stop if self.camera == "picam" else self._cap.release)()
            self._cap = None


class _Closed:
    """Stands in for a camera that could not be reopened: every read fails, so the retry count runs out."""

    def read(self) -> tuple[bool, None]:
        return False, None

    def release(self) -> None:
        pass


def has_display() -> bool:
    """True when a preview window can be shown (a display and an OpenCV build with GUI support)."""
    import os

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2.getBuildInformation()
    gui = info.split("GUI:")[1].splitlines()[0].strip() if "GUI:" in info else "NONE"
    return gui.upper() not in ("NONE", "")
