"""Tomato pictures framed as an upload: the picture as it is against centre crops of it (the live camera's guide).

    python scripts/tomato_upload_framing.py [ARTIFACT] [--fractions 1,0.9,0.8,0.7] [--out docs/bench]

The val and test crops of the photo split (one fruit each, with the data set's 10 % margin, mostly wider than tall)
go through the artifact as they are (stretched to the input, as training saw them) and through a square centre crop
of each fraction of the shorter side (``Prestep`` of kind ``center_crop``, what the live camera takes). Choose on val.
Writes ``tomato-upload-framing-<stem>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.bench.fingerprint import fingerprint
from edge.bench.report import markdown_table
from edge.data import read_image, split_family, to_tensor
from edge.prestep import Prestep
from edge.runtime import load
from edge.zoo import resolve_model

BATCH = 64


def accuracy(model, pictures: list[np.ndarray], y: np.ndarray) -> float:
    out = model.predict_all(to_tensor(pictures, model.manifest.input), BATCH)
    return round(float((out.argmax(1) == y).mean()), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", nargs="?", default="tomato")
    ap.add_argument("--fractions", default="1,0.9,0.8,0.7")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="docs/bench")
    ap.add_argument("--stem", default="x86-2core")
    a = ap.parse_args()
    artifact = str(resolve_model(a.artifact))
    model = load(artifact, threads=a.threads)
    fractions = [float(f) for f in a.fractions.split(",")]
    rows, table = [], []
    for split in ("val", "test"):
        samples = split_family("tomato").parts[split]
        pictures = [read_image(s.path, "rgb") for s in samples]
        y = np.array([s.label for s in samples])
        aspect = np.array([p.shape[1] / p.shape[0] for p in pictures])
        row = {"split": split, "pictures": len(y), "aspect_median": round(float(np.median(aspect)), 2),
               "as_is": accuracy(model, pictures, y)}
        for f in fractions:
            crop = Prestep({"kind": "center_crop", "fraction": f})
            row[f"centre_{f:g}"] = accuracy(model, [crop(p)[0][0] for p in pictures], y)
        rows.append(row)
        table.append([split, str(len(y)), f"{row['aspect_median']:.2f}", f"{row['as_is']:.4f}",
                      *(f"{row[f'centre_{f:g}']:.4f}" for f in fractions)])
        print(" | ".join(table[-1]), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"tomato-upload-framing-{a.stem}"
    meta = {"artifact": artifact, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": fingerprint()}
    (out / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    head = ["split", "pictures", "width / height", "as it is", *(f"centre {f:g}" for f in fractions)]
    (out / f"{stem}.md").write_text(
        f"# Tomato pictures as an upload: as they are or centre-cropped\n\n`python scripts/tomato_upload_framing.py "
        f"{a.artifact}` ({meta['date']}, {Path(artifact).name}). Accuracy on the photo split's crops (one fruit each, "
        "the data set's 10 % margin); 'centre f' takes the square centre f of the shorter side, as the live camera "
        "does.\n\n" + markdown_table(head, table) + "\n")
    print(f"wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main()
