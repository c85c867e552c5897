"""Run-time views for a deployed FER artifact: its logits averaged over crops of the face (measured, not adopted).

    python scripts/fer_views.py models/zoo/fer/fer.int8.onnx

Each view is a centred (or 4 px shifted) crop of 90 % / 95 % of the face, resized back, then fed to the artifact as
scripts/beyond_deployed.py feeds it (equalised where the manifest says so); val and test top-1 of each view alone
and of their logit means. Session q: +0.3 points on val for 2-5x the latency (NOTES).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
from beyond_deployed import logits as artifact_logits

from edge import runtime
from edge.data import split_family
from edge.families import get_family
from edge.models.train_common import CACHE_DIR, cache_images

VIEWS = {"as is": (1.0, 0, 0), "90%": (0.9, 0, 0), "90% left": (0.9, -4, 0), "90% right": (0.9, 4, 0),
         "90% up": (0.9, 0, -4), "90% down": (0.9, 0, 4), "95%": (0.95, 0, 0)}
MEANS = {"as is + 90%": ["as is", "90%"], "as is + 95%": ["as is", "95%"], "as is + 90% + 95%": ["as is", "90%", "95%"],
         "as is + 4 shifted 90%": ["as is", "90% left", "90% right", "90% up", "90% down"], "all 7": list(VIEWS)}


def crop(x: np.ndarray, frac: float, dx: int, dy: int) -> np.ndarray:
    """uint8 (N, 1, S, S) -> the centre crop of ``frac`` x S shifted by (dx, dy) pixels, resized back to S."""
    size = x.shape[-1]
    c = int(round(size * frac))
    o = (size - c) // 2
    return np.stack([cv2.resize(im[0, o + dy:o + dy + c, o + dx:o + dx + c], (size, size),
                                interpolation=cv2.INTER_LINEAR)[None] for im in x])


def main(path: str) -> None:
    model = runtime.load(Path(path), threads=2)
    size = int(model.manifest.input.shape[-1])
    spec = get_family("fer").input_spec(size)
    parts = split_family("fer").parts
    for k in ("val", "test"):
        x, y, _ = cache_images(parts[k], spec.color, size, CACHE_DIR, f"fer-{k}", lambda *_: None)
        logits = {}
        for name, (frac, dx, dy) in VIEWS.items():
            t = time.perf_counter()
            logits[name] = artifact_logits(model, x if frac == 1.0 else crop(x, frac, dx, dy), spec)
            print(f"{k} {name}: {(logits[name].argmax(1) == y).mean():.4f} ({time.perf_counter() - t:.0f} s)")
        for name, views in MEANS.items():
            print(f"{k} {name}: {(np.mean([logits[v] for v in views], 0).argmax(1) == y).mean():.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
