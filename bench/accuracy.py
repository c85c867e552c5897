"""Accuracy after export on the family's test split (only for trained artifacts with data present)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.data import load_batch, split_for
from edge.errors import EdgeError


def evaluate(model: Any, batch: int = 32) -> dict[str, Any] | None:
    """Top-1 accuracy (classifiers) or verification accuracy at the manifest threshold (embedders)."""
    man = model.manifest
    if not man.trained:
        return None
    if man.family == "trail":  # the tree's accuracy lives in its card; its artifacts are checked bit-exact
        return None
    try:
        split = split_for(man.family, man.source.get("data"))  # the user's folder a run was trained on
    except EdgeError:
        return None
    samples = split["test"]
    x, y, bad = load_batch(samples, man.input)
    outs = model.predict_all(x, batch)
    if man.task == "classify":
        return {"metric": "top1", "value": round(float((outs.argmax(1) == y).mean()), 4), "n": int(len(y)),
                "unreadable": bad}
    thr = (man.threshold or {}).get("distance")
    if thr is None:
        return None
    d = np.linalg.norm(outs[:, None] - outs[None], axis=-1)
    same = y[:, None] == y[None]
    iu = np.triu_indices(len(y), 1)
    pred = d[iu] <= thr
    return {"metric": "verification_acc", "value": round(float((pred == same[iu]).mean()), 4),
            "pairs": int(len(iu[0])), "threshold": thr}
