"""``edge serve``: an upload page, a live camera page and ``POST /predict/<model>`` for the zoo's classifiers.

Uploads are checked before they are decoded (size in bytes, pixel count from the header), huge images are
downscaled while decoding, and every failure is a JSON error the page shows; the server keeps serving.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import EdgeError, InputError
from edge.live import Classifier
from edge.web import api_app, fail

PAGES = Path(__file__).parent / "pages"
MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000  # refuse above this (a decompression bomb); downscale above MAX_SIDE
MAX_SIDE = 1600


class TooLarge(InputError):
    """An upload over the pixel limit (answered 413)."""


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or BMP header without decoding; None when the format is unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + seg
    return None


def decode_upload(data: bytes, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> tuple[np.ndarray, dict]:
    """Bytes -> RGB uint8 image, refusing bombs and downscaling big photos; InputError with a message otherwise."""
    if not data:
        raise InputError("empty upload: send an image file (JPEG, PNG, BMP, GIF, WebP)")
    info: dict[str, Any] = {}
    size = image_size(data)
    flag = cv2.IMREAD_COLOR
    if size is not None:
        w, h = size
        if w * h > max_pixels:
            raise TooLarge(f"image is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {max_pixels / 1e6:.0f} MP")
        if data[:2] == b"\xff\xd8" and max(w, h) > 2 * max_side:
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for almost nothing
            factor = min(8, 1 << int(np.log2(max(w, h) / max_side)))
            flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if img is None:
        raise InputError("cannot decode the upload as an image (corrupt, or not an image)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise TooLarge(f"image is {img.shape[1]}x{img.shape[0]}; the limit is {max_pixels / 1e6:.0f} MP")
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        info["downscaled_from"] = list(size or (w, h))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), info


def predict_image(clf: Classifier, img: np.ndarray, from_camera: bool) -> dict[str, Any]:
    """Top-3 for one image, framed as ``Prestep.for_picture`` says (a camera frame or an upload)."""
    crop, box, missed = clf.prestep.for_picture(img, from_camera)
    probs = clf.predict_crops([crop])[0]
    out = {"top": clf.top(probs, 3), "box": list(box), "prestep": clf.prestep.kind}
    if missed:
        out["note"] = "no face found: the whole image was classified"
    return out


def load_classifiers(names: list[str], threads: int = 1) -> dict[str, Classifier]:
    from edge.zoo import resolve_model

    out: dict[str, Classifier] = {}
    for name in names:
        path = resolve_model(name)
        clf = Classifier.open(path, threads=threads)
        out[clf.model.manifest.family if not Path(name).exists() else Path(name).name.split(".")[0]] = clf
    if not out:
        raise EdgeError("no models to serve")
    return out


def create_app(models: dict[str, Classifier], token: str | None = None, max_bytes: int = MAX_BYTES,
               max_pixels: int = MAX_PIXELS) -> Any:
    from flask import Response, jsonify, request

    app = api_app("edge-serve", token, max_bytes, "serve", "edge serve", protect="/predict/")

    def page(name: str) -> Any:
        return Response((PAGES / name).read_text(), mimetype="text/html")

    @app.get("/")
    def upload_page() -> Any:
        return page("upload.html")

    @app.get("/live")
    def live_page() -> Any:
        return page("live.html")

    @app.get("/models")
    def list_models() -> Any:
        return jsonify({"models": [
            {"name": n, "classes": c.classes, "prestep": c.prestep.spec, "format": c.model.manifest.format,
             "metrics": c.model.manifest.metrics} for n, c in models.items()],
            "max_bytes": max_bytes, "max_pixels": max_pixels})

    @app.post("/predict/<name>")
    def predict(name: str) -> Any:
        clf = models.get(name)
        if clf is None:
            return fail(404, f"no model '{name}'; available: {', '.join(models)}")
        upload = request.files.get("image")
        if upload is not None:
            data = upload.read()
        elif request.files:
            return fail(400, "send the image in a form field named 'image'")
        else:
            data = request.get_data()
        try:
            img, info = decode_upload(data, max_pixels=max_pixels)
            result = predict_image(clf, img, request.args.get("source") == "camera")
        except InputError as exc:
            return fail(413 if isinstance(exc, TooLarge) else 400, str(exc))
        return jsonify({"model": name, **result, **info})

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Any:
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return fail(exc.code or 500, exc.description or exc.name)
        app.logger.exception("predict failed")
        return fail(500, f"internal error: {type(exc).__name__}")

    return app
