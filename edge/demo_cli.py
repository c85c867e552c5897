"""`edge live` and `edge serve`: the camera and web demos of the zoo's classifiers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _source(a: argparse.Namespace) -> Any:
    from edge.capture import FrameSource

    cam: int | str | None = a.camera
    return FrameSource(camera=cam, video=a.video, images=a.images, width=a.width, height=a.height,
                       retries=a.retries)


def cmd_live(a: argparse.Namespace) -> int:
    from edge.capture import has_display
    from edge.live import Classifier, LiveStats, Smoother, WordBuilder, run_live
    from edge.prestep import parse_roi
    from edge.zoo import resolve_model

    override: dict[str, Any] = {}
    if a.roi:
        override = {"kind": "roi", "box": parse_roi(a.roi)}
    clf = Classifier.open(resolve_model(a.model), threads=a.threads, override=override, detector=a.detector)
    word = None
    if a.word:
        word = WordBuilder(hold_s=a.hold, min_conf=a.min_conf)
    show = has_display() and not a.no_window
    source = _source(a)
    stats = LiveStats()
    out = sys.stdout if (a.json or not show) else None
    print(f"edge live: {clf.model.manifest.family} ({clf.model.artifact.name}), prestep {clf.prestep.kind}, "
          f"{source.label}, {'window' if show else 'JSON lines on stdout'}", file=sys.stderr)
    try:
        for _ in run_live(source.frames(), clf, Smoother(a.smooth, a.window), word, show=show,
                          overlay=show or a.overlay, max_frames=a.max_frames, out=out, stats=stats):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        summary = {**stats.summary(), "skipped": {k: v for k, v in source.stats.items() if k != "frames"}}
        print(json.dumps({"summary": summary}), file=sys.stderr)
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from edge.serve import create_app, load_classifiers

    models = load_classifiers([n.strip() for n in a.models.split(",") if n.strip()], threads=a.threads)
    app = create_app(models, token=a.token, max_bytes=a.max_mb * 1024 * 1024)
    print(f"edge serve: {', '.join(models)} on http://{a.host}:{a.port}/ (live page /live, API POST /predict/<model>)",
          file=sys.stderr)
    app.run(host=a.host, port=a.port, threaded=True)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="camera/video -> prestep -> model -> overlay window or JSON lines")
    p.add_argument("--model", required=True, help="zoo name (fer, asl, tomato) or an artifact path")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", help="camera index (0), device path, stream URL, or 'picam' (Picamera2)")
    src.add_argument("--video", help="a video file")
    src.add_argument("--images", help="a folder of images, in name order")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--retries", type=int, default=3, help="reopen a camera that stops this many times")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--roi", help="guide box x,y,w,h as fractions of the frame (overrides the manifest's prestep)")
    p.add_argument("--detector", default="auto",
                   help="face detector for FER: 'auto' (default: MediaPipe's BlazeFace short then full range, "
                        "its boxes mapped to Haar's framing, which FER2013's crops have; Haar where its package is "
                        "missing), 'haar', 'blazeface', 'blazeface-short', or a YuNet .onnx file")
    p.add_argument("--smooth", default="majority", choices=["majority", "ema", "none"])
    p.add_argument("--window", type=int, default=8, help="frames in the majority vote")
    p.add_argument("--word", action="store_true", help="ASL word mode: hold a letter to add it to the word")
    p.add_argument("--hold", type=float, default=1.0, help="seconds a letter must be held (word mode)")
    p.add_argument("--min-conf", type=float, default=0.6, help="word mode ignores letters below this confidence")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--no-window", action="store_true", help="never open a window")
    p.add_argument("--overlay", action="store_true", help="draw the overlay even headless (for benchmarks)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout even with a window")
    p.set_defaults(fn=cmd_live)

    p = sub.add_parser("serve", help="web demo: upload page, live camera page, POST /predict/<model>")
    p.add_argument("--models", default="fer,asl,tomato", help="comma list of zoo names or artifact paths")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to open it to the local network")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=1, help="inference threads per model")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on /predict")
    p.add_argument("--max-mb", type=int, default=8, help="upload size limit in MB")
    p.set_defaults(fn=cmd_serve)
