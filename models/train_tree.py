"""``edge train trail``: fit the trail tree on both label definitions and both split protocols."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split

from edge.data import data_root
from edge.families import TRAIL_CLASSES, get_family
from edge.models.checkpoint import save_checkpoint
from edge.models.tree import trail_tree
from edge.weather import label_config, load_weather


def _scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "f1_berbahaya": round(float(f1_score(y_true, y_pred, zero_division=0)), 4),
        "n_test": int(len(y_true)),
        "positives_test": int(y_true.sum()),
        "confusion": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
    }


def train_trail(data: Path | None = None, out: Path = Path("runs/trail"), label: str = "rule",
                max_depth: int = 6, seed: int = 0) -> dict[str, Any]:
    """Fit, score (chronological and random 8:2, both labels), save the deploy tree and metrics.json."""
    import platform
    import time

    t0 = time.time()
    path = Path(data) if data else data_root() / "weather" / "bmkg_semarang_2017_2023.csv"
    table = load_weather(path)
    years = np.array([int(d[:4]) for d in table.dates])
    last = int(years.max())
    metrics: dict[str, Any] = {
        "rows_total": table.total_rows, "rows_valid": int(len(table.X)), "dropped": table.dropped,
        "label_config": label_config().name, "deploy_label": label, "max_depth": max_depth,
    }
    for name, y in (("rule", table.y_rule), ("outcome", table.y_outcome)):
        m: dict[str, Any] = {"positive_rate": round(float(y.mean()), 4)}
        tr, te = years < last, years == last
        clf = trail_tree(max_depth=max_depth, seed=seed).fit(table.X[tr], y[tr])
        m["chronological"] = {"train_years": f"{int(years.min())}-{last - 1}", "test_year": last,
                              **_scores(y[te], clf.predict(table.X[te]))}
        xtr, xte, ytr, yte = train_test_split(table.X, y, test_size=0.2, random_state=seed, stratify=y)
        clf = trail_tree(max_depth=max_depth, seed=seed).fit(xtr, ytr)
        m["random_8_2"] = _scores(yte, clf.predict(xte))
        metrics[name] = m
    y_deploy = table.y_rule if label == "rule" else table.y_outcome
    final = trail_tree(max_depth=max_depth, seed=seed).fit(table.X, y_deploy)
    metrics["wall_minutes"] = round((time.time() - t0) / 60, 3)
    metrics["hardware"] = f"{platform.machine()} CPU, scikit-learn"
    metrics["deploy_tree"] = {"nodes": int(final.tree_.node_count), "depth": int(final.get_depth()),
                              "trained_on": "all valid rows"}
    fam = get_family("trail")
    meta = {"trained": True, "classes": TRAIL_CLASSES, "input": fam.input_spec().__dict__,
            "metrics": metrics, "label": label,
            "note": f"DecisionTreeClassifier(max_depth={max_depth}) on the '{label}' label"}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "best.pkl", fam, final, meta)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
