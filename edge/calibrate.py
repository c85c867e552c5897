"""Confidence calibration for exported classifiers: one softmax temperature, fitted on the validation split.

A network trained with cross-entropy is usually over- or under-confident, so a confidence threshold in a live
app (the word mode's ``--min-conf``) means something different for every model. ``edge calibrate``
runs the artifact through ``edge.runtime`` on its family's validation split, fits the temperature T that
minimises the negative log-likelihood of softmax(logits / T), writes T into the manifest (the artifact itself
is untouched) and reports the expected calibration error on the test split before and after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError


def softmax_t(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax_t(logits, temperature)[np.arange(len(y)), y]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T in [lo, hi] that minimises the NLL (golden-section search on log T; the NLL is convex there)."""
    if len(y) == 0:
        raise EdgeError("no labelled outputs to fit a temperature on")
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if nll(logits, y, float(np.exp(c))) < nll(logits, y, float(np.exp(d))):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return round(float(np.exp((a + b) / 2)), 4)


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: |accuracy - confidence| over equal-width confidence bins, weighted by count."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return round(float(total), 4)


def _logits(model: Any, split: str, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    from edge.data import load_batch, split_for

    man = model.manifest
    x, y, _ = load_batch(split_for(man.family, man.source.get("data"))[split], man.input)
    return model.predict_all(x, batch), y


def calibrate(artifact: Path | str, threads: int = 1, write: bool = True) -> dict[str, Any]:
    """Fit T on the validation split through the runtime, score ECE on test, store T in the manifest."""
    from edge.manifest import read_manifest, write_manifest
    from edge.runtime import load

    path, man = read_manifest(artifact)
    if man.task != "classify":
        raise EdgeError(f"{path.name}: only classifiers are calibrated ({man.family} is '{man.task}')")
    if not man.trained:
        raise EdgeError(f"{path.name} is not a trained model: nothing to calibrate")
    model = load(path, threads=threads)
    vx, vy = _logits(model, "val")
    if np.all(vx >= 0) and np.allclose(vx.sum(1), 1.0, atol=1e-3):
        raise EdgeError(f"{path.name} outputs probabilities, not logits: a temperature cannot be applied")
    t = fit_temperature(vx, vy)
    tx, ty = _logits(model, "test")
    report = {"artifact": str(path), "temperature": t, "val_images": int(len(vy)), "test_images": int(len(ty)),
              "val_nll": {"before": round(nll(vx, vy), 4), "after": round(nll(vx, vy, t), 4)},
              "test_ece": {"before": ece(softmax_t(tx), ty), "after": ece(softmax_t(tx, t), ty)},
              "test_nll": {"before": round(nll(tx, ty), 4), "after": round(nll(tx, ty, t), 4)}}
    if write:
        man.temperature = t
        man.metrics = {**man.metrics, "test_ece": report["test_ece"]["after"],
                       "test_ece_uncalibrated": report["test_ece"]["before"]}
        write_manifest(path, man)
    return report
