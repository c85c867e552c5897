"""The pictures a card or a report carries: the confusion matrix and the ROC curve. matplotlib is optional (the
torch-free runtime does not need it): without it nothing is drawn and the functions return None."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    """matplotlib.pyplot drawing to files, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path, title: str) -> Path | None:
    """The confusion matrix, each row as shares of its true class (counts written in where there are few classes)."""
    plt = _pyplot()
    if plt is None:
        return None
    cm_a = np.asarray(cm, dtype=float)
    norm = cm_a / np.maximum(cm_a.sum(1, keepdims=True), 1)
    size = max(4, 0.4 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    if len(classes) <= 10:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, int(cm_a[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str,
             marks: dict[str, tuple[float, float]] | None = None) -> Path | None:
    """ROC curves from (distance, genuine) pairs per name (smaller distance = same person), with ``marks``: named
    (false-accept rate, false-reject rate) points such as a threshold's."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (dist, same) in curves.items():
        s = np.asarray(same, dtype=float)[np.argsort(dist)]
        tpr = np.concatenate([[0], np.cumsum(s) / max(s.sum(), 1)])
        fpr = np.concatenate([[0], np.cumsum(1 - s) / max((1 - s).sum(), 1)])
        ax.plot(fpr, tpr, label=name)
    for name, (far, frr) in (marks or {}).items():
        ax.plot([far], [1 - frr], "o", ms=5, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, path)
