"""``edge train trail``: fit the trail tree on both label definitions and both split protocols.

The rule label is a function of the three readings, so the rule tree is taught on the station's days and on readings
drawn over everything the station can read (``edge.weather.range_readings``), labelled by the rule: Semarang's days
alone (20.6-32.4 C, 40-96 %) leave a summit's cold or a dry season to chance. Its agreement with the rule over that
range is measured on a separate draw. The outcome label (what the day brought) is no function of the readings: its
tree sees the data rows alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split

from edge.data import data_root
from edge.errors import EdgeError
from edge.families import TRAIL_CLASSES, get_family
from edge.models.checkpoint import save_checkpoint
from edge.models.tree import trail_tree
from edge.weather import label_config, load_weather, range_readings, rule_label

# per label: tree depth and how many range readings join the data rows (chosen on 2017-2021 -> 2022 and a separate
# range draw, never on 2023; the card notes give the figures)
RECIPES: dict[str, dict[str, int]] = {"rule": {"max_depth": 10, "range_readings": 40_000},
                                      "outcome": {"max_depth": 6, "range_readings": 0}}
AGREEMENT_READINGS = 50_000  # the range draw the rule tree is checked on (another seed than its teaching draw)


def _scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "f1_berbahaya": round(float(f1_score(y_true, y_pred, zero_division=0)), 4),
        "n_test": int(len(y_true)),
        "positives_test": int(y_true.sum()),
        "confusion": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
    }


def fit_recipe(X: np.ndarray, y: np.ndarray, label: str, cfg: dict, seed: int = 0,
               max_depth: int | None = None, n_range: int | None = None) -> Any:
    """The tree for ``label`` fitted on these rows, plus (rule label) readings over the station's range."""
    recipe = RECIPES[label]
    n_range = recipe["range_readings"] if n_range is None else n_range
    if n_range:
        extra = range_readings(cfg, n_range, seed)
        X, y = np.concatenate([X, extra]), np.concatenate([y, rule_label(extra, cfg)])
    return trail_tree(max_depth=max_depth or recipe["max_depth"], seed=seed).fit(X, y)


def range_agreement(tree: Any, cfg: dict, seed: int = 0) -> float:
    """Share of readings drawn over the station's range on which the tree says what the rule says."""
    X = range_readings(cfg, AGREEMENT_READINGS, seed + 1_000_003)
    return round(float((tree.predict(X) == rule_label(X, cfg)).mean()), 4)


def train_trail(data: Path | None = None, out: Path = Path("runs/trail"), label: str = "rule",
                seed: int = 0) -> dict[str, Any]:
    """Fit, score (chronological and random 8:2, both labels), save the deploy tree and metrics.json."""
    import platform
    import time

    t0 = time.time()
    path = Path(data) if data else data_root() / "weather" / "bmkg_semarang_2017_2023.csv"
    table = load_weather(path)
    cfg = json.loads(label_config().read_text())
    metrics: dict[str, Any] = {
        "data": str(path) if data else None, "read_as": table.layout, "station": table.station,
        "rows_total": table.total_rows, "rows_valid": int(len(table.X)), "dropped": table.dropped,
        "rows_without_rainfall": table.no_outcome, "label_config": label_config().name, "deploy_label": label,
        "recipes": RECIPES, "max_depth": RECIPES[label]["max_depth"],
    }
    for name in ("rule", "outcome"):
        X, y, dates = table.labelled(name)
        m: dict[str, Any] = {"rows": int(len(y)), "positive_rate": round(float(y.mean()), 4) if len(y) else None}
        if len(np.unique(y)) < 2 or len(y) < 10:
            m["skipped"] = f"{len(y)} rows with {len(np.unique(y))} class(es): nothing to split and score"
            metrics[name] = m
            continue
        years = np.array([int(d[:4]) for d in dates])
        last = int(years.max())
        tr, te = years < last, years == last
        if tr.any() and len(np.unique(y[tr])) == 2:
            clf = fit_recipe(X[tr], y[tr], name, cfg, seed)
            m["chronological"] = {"train_years": f"{int(years.min())}-{last - 1}", "test_year": last,
                                  **_scores(y[te], clf.predict(X[te]))}
        else:
            m["chronological"] = None
            m["chronological_skipped"] = f"the rows cover {last} alone: no earlier year to train on"
        strat = y if np.bincount(y).min() >= 2 else None
        xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=strat)
        clf = fit_recipe(xtr, ytr, name, cfg, seed)
        m["random_8_2"] = _scores(yte, clf.predict(xte))
        metrics[name] = m
    X, y, _ = table.labelled(label)
    if len(np.unique(y)) < 2:
        raise EdgeError(f"{path}: the '{label}' label has one class only on these rows; nothing to learn")
    final = fit_recipe(X, y, label, cfg, seed)
    data_only = trail_tree(max_depth=RECIPES[label]["max_depth"], seed=seed).fit(X, y)
    metrics["range_agreement"] = {
        "readings": AGREEMENT_READINGS, "range": {k: v for k, v in cfg["station_range"].items() if k[0] != "_"},
        "deployed": range_agreement(final, cfg, seed), "data_rows_only": range_agreement(data_only, cfg, seed)}
    metrics["wall_minutes"] = round((time.time() - t0) / 60, 3)
    metrics["hardware"] = f"{platform.machine()} CPU, scikit-learn"
    n_range = RECIPES[label]["range_readings"]
    metrics["deploy_tree"] = {"nodes": int(final.tree_.node_count), "depth": int(final.get_depth()),
                              "trained_on": "all valid rows" + (f" and {n_range} readings over the station's range "
                                                                "labelled by the rule" if n_range else "")}
    fam = get_family("trail")
    meta = {"trained": True, "classes": TRAIL_CLASSES, "input": fam.input_spec().__dict__,
            "metrics": metrics, "label": label,
            "note": f"DecisionTreeClassifier(max_depth={RECIPES[label]['max_depth']}) on the '{label}' label"}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "best.pkl", fam, final, meta)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
