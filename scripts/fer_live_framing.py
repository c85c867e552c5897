"""FER through the live path (`edge live`, the camera page of `edge serve`): the face detector and the crop margin
against the data set's own crop.

    python scripts/fer_live_framing.py [ARTIFACT] [--per-class 120] [--margins 0,0.05,0.1,0.15] [--out docs/bench]

Each val and test face (48x48, evenly spread over each class) is put into a 640x480 frame at 240 px, as `edge bench
apps` does, once on flat gray and once on its own border pixels repeated outwards (no gray edge for a detector or a
wide crop to find). Each detector runs once per frame; each margin then grows its first box to a square as the
manifest's prestep does, and the artifact classifies the crops. Per detector and margin: the share of faces found,
the accuracy on the faces found, the accuracy over all faces (a missed face counts as wrong), the box side over the
face side and the box centre's offset (fractions of the face side), detection ms per frame. Choose on val.
Writes ``fer-live-framing-<stem>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from edge.bench.fingerprint import fingerprint
from edge.bench.frames import place
from edge.bench.report import markdown_table
from edge.data import read_image, split_family, take_spread
from edge.faces import make_detector
from edge.live import Classifier
from edge.prestep import Prestep, prestep_spec

FACE_PX = 240


def edge_padded(img: np.ndarray, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """The face at ``FACE_PX`` in the middle of an RGB frame whose rest repeats the face's border pixels."""
    f = cv2.resize(img, (FACE_PX, FACE_PX), interpolation=cv2.INTER_LINEAR)
    top, left = (size[0] - FACE_PX) // 2, (size[1] - FACE_PX) // 2
    f = cv2.copyMakeBorder(f, top, size[0] - FACE_PX - top, left, size[1] - FACE_PX - left, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(f, cv2.COLOR_GRAY2RGB)


FRAMES = {"flat gray": place, "edge pixels": edge_padded}


def faces(split: str, per_class: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``per_class`` faces of each class of a FER split, evenly spread, as gray uint8 pictures, and their labels."""
    samples = split_family("fer").parts[split]
    picked = [s for k in sorted({s.label for s in samples})
              for s in take_spread([s for s in samples if s.label == k], per_class)]
    return [read_image(s.path, "gray") for s in picked], np.array([s.label for s in picked])


def score(clf: Classifier, frames: list[np.ndarray], y: np.ndarray, detector: str,
          margins: list[float]) -> list[dict]:
    """One row per margin for one detector on one set of frames (the detector runs once per frame)."""
    det = make_detector(detector, int(clf.prestep.spec.get("min_size", 40)))
    t0 = time.perf_counter()
    boxes = [det.detect(f)[:1] for f in frames]
    ms = (time.perf_counter() - t0) / len(frames) * 1000
    found = np.array([bool(b) for b in boxes])
    h, w = frames[0].shape[:2]
    rows = []
    for m in margins:
        pre = Prestep(prestep_spec(clf.model.manifest, {"margin": m}), detector=det)
        crops = [pre.crop_faces(f, b) for f, b in zip(frames, boxes) if b]
        pred = np.full(len(y), -1)
        if crops:
            pred[found] = clf.predict_crops([c[0][0] for c in crops]).argmax(1)
        grown = np.array([c[0][1] for c in crops], float).reshape(-1, 4)
        rows.append({"detector": detector, "margin": m, "faces": int(len(y)), "found": round(float(found.mean()), 4),
                     "acc_found": round(float((pred[found] == y[found]).mean()), 4) if found.any() else None,
                     "acc_all": round(float((pred == y).mean()), 4),
                     "box_over_face": round(float(np.median(grown[:, 2]) / FACE_PX), 3) if len(grown) else None,
                     "centre_dx": round(float(np.median(grown[:, 0] + grown[:, 2] / 2 - w / 2) / FACE_PX), 3)
                     if len(grown) else None,
                     "centre_dy": round(float(np.median(grown[:, 1] + grown[:, 3] / 2 - h / 2) / FACE_PX), 3)
                     if len(grown) else None,
                     "detect_ms": round(ms, 2), "_pred": pred})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", nargs="?", default="models/zoo/fer/fer.int8.onnx")
    ap.add_argument("--per-class", type=int, default=120)
    ap.add_argument("--margins", default="0,0.05,0.1,0.15")
    ap.add_argument("--detectors", default="haar,auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/bench")
    ap.add_argument("--stem", default="x86-2core")
    a = ap.parse_args()
    clf = Classifier.open(a.artifact, threads=a.threads)
    margins = [float(m) for m in a.margins.split(",")]
    results, table = [], []
    for split in ("val", "test"):
        imgs, y = faces(split, a.per_class)
        as_is = round(float((clf.predict_crops(imgs).argmax(1) == y).mean()), 4)
        print(f"{split}: {len(y)} faces, the data set's own crop {as_is:.4f}", flush=True)
        for kind, make in FRAMES.items():
            frames = [make(im) for im in imgs]
            rows = [r for d in a.detectors.split(",") for r in score(clf, frames, y, d, margins)]
            both = np.all([r["_pred"] >= 0 for r in rows], axis=0)  # faces every detector found
            for r in rows:
                pred = r.pop("_pred")
                r.update(split=split, frames=kind, as_cropped=as_is,
                         acc_found_by_all=round(float((pred[both] == y[both]).mean()), 4) if both.any() else None)
                results.append(r)
                table.append([split, kind, r["detector"], f"{r['margin']:.2f}", f"{r['found']:.3f}",
                              f"{r['acc_found']:.4f}" if r["acc_found"] is not None else "-",
                              f"{r['acc_found_by_all']:.4f}" if r["acc_found_by_all"] is not None else "-",
                              f"{r['acc_all']:.4f}", str(r["box_over_face"]),
                              f"{r['centre_dx']:+.3f} / {r['centre_dy']:+.3f}", f"{r['detect_ms']:.1f}"])
                print(" | ".join(table[-1]), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"fer-live-framing-{a.stem}"
    meta = {"artifact": a.artifact, "per_class": a.per_class, "face_px": FACE_PX,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": fingerprint()}
    (out / f"{stem}.json").write_text(json.dumps({**meta, "rows": results}, indent=1) + "\n")
    head = ["split", "frame", "detector", "margin", "found", "acc (found)", "acc (found by all)", "acc (all faces)",
            "box / face", "centre dx / dy", "detect ms"]
    (out / f"{stem}.md").write_text(
        f"# FER through the live path: detector and margin\n\n`python scripts/fer_live_framing.py {a.artifact} "
        f"--per-class {a.per_class}` ({meta['date']}). The data set's own crop: see `as_cropped` in the JSON. "
        "Accuracy (all faces) counts a face the detector missed as wrong.\n\n" + markdown_table(head, table) + "\n")
    print(f"wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main()
