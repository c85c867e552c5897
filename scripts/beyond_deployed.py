"""Deployed artifacts (through ``edge.runtime``) on the "beyond this data set" tests that training reports.

    python scripts/beyond_deployed.py models/zoo/tomato/tomato.int8.onnx artifacts/tomato/tomato.int8.onnx

tomato (colour families): val and test as they are and under ``CAMERA_SHIFTS``, with the mean of the four;
asl: test as it is, with the hands on the held-out backgrounds (the same pictures as training's score) and
placed otherwise (``HAND_POSITIONS``: turned, farther, nearer, off centre);
fer: test as it is and under each of ``edge.conditions.FACE_CONDITIONS`` (light, focus, distance, compression).
The conditions change the camera's picture; a model trained with ``--clahe`` gets it equalised after that, as the
runtime would.
How the zoo's tomato and ASL ensembles were chosen over the single models (NOTES, session i).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from edge import runtime
from edge.data import equalize_batch, split_family
from edge.families import get_family
from edge.models.train_common import CACHE_DIR, cache_images
from edge.models.train_image import (
    CAMERA_SHIFTS,
    HAND_POSITIONS,
    _normalise,
    camera_shifted,
    hand_masks,
    hand_positioned,
    on_unseen_backgrounds,
)


def logits(model: runtime.Model, x: np.ndarray, spec) -> np.ndarray:
    """The artifact's outputs on uint8 (N, C, H, W) pictures as the camera gives them, equalised first where the
    manifest says so."""
    x = equalize_batch(x, model.manifest.input.clahe)
    xn = _normalise(torch.from_numpy(x).float() / 255.0, spec).numpy().astype(np.float32)
    return model.predict_all(xn)


def _accuracy(model: runtime.Model, x: np.ndarray, y: np.ndarray, spec) -> float:
    """Top-1 of ``logits``."""
    return float((logits(model, x, spec).argmax(1) == y).mean())


def camera_rows(model: runtime.Model, family: str, size: int) -> str:
    spec = get_family(family).input_spec(size)
    parts = split_family(family).parts
    row = []
    for k in ("val", "test"):
        x, y, _ = cache_images(parts[k], spec.color, size, CACHE_DIR, f"{family}-{k}", lambda *_: None)
        accs = [_accuracy(model, x, y, spec)]
        accs += [_accuracy(model, camera_shifted(x, gains), y, spec) for gains in CAMERA_SHIFTS.values()]
        row.append(f"{k}: " + " / ".join(f"{a:.4f}" for a in accs) + f" (mean {np.mean(accs):.4f})")
    return "as is / " + " / ".join(CAMERA_SHIFTS) + " | " + " | ".join(row)


def background_row(model: runtime.Model, family: str, size: int) -> str:
    spec = get_family(family).input_spec(size)
    test = {"test": split_family(family).parts["test"]}
    xs = {"test": cache_images(test["test"], spec.color, size, CACHE_DIR, f"{family}-test", lambda *_: None)}
    x, y, _ = xs["test"]
    xo = on_unseen_backgrounds(x, hand_masks(test, size, family, xs)["test"], spec.color)
    placed = ", ".join(f"{name} {_accuracy(model, hand_positioned(x, *how), y, spec):.4f}"
                       for name, how in HAND_POSITIONS.items())
    return f"test {_accuracy(model, x, y, spec):.4f}, unseen backgrounds {_accuracy(model, xo, y, spec):.4f}, {placed}"


def condition_row(model: runtime.Model, family: str, size: int) -> str:
    from edge.conditions import FACE_CONDITIONS

    spec = get_family(family).input_spec(size)
    x, y, _ = cache_images(split_family(family).parts["test"], spec.color, size, CACHE_DIR, f"{family}-test",
                           lambda *_: None)
    accs = {"as is": _accuracy(model, x, y, spec)}
    for name, cond in FACE_CONDITIONS.items():
        shifted = np.stack([cond(im[0], k)[None] for k, im in enumerate(x)])
        accs[name] = _accuracy(model, shifted, y, spec)
    return "test: " + " / ".join(f"{n} {a:.4f}" for n, a in accs.items())


def main(paths: list[str]) -> None:
    for p in paths:
        model = runtime.load(Path(p))
        fam, size = model.manifest.family, int(model.manifest.input.shape[-1])
        row = (background_row(model, fam, size) if fam == "asl" else condition_row(model, fam, size) if fam == "fer"
               else camera_rows(model, fam, size))
        print(f"{p}: {row}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
