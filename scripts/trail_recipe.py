"""How the trail rule tree's recipe was chosen: depth x range readings, trained on 2017-2021, scored on 2022's rows and
on a separate draw over the station's range (2023, the card's chronological test year, is never looked at).

    python scripts/trail_recipe.py [--data CSV]

Prints a Markdown table (the card note keeps it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.bench.report import markdown_table
from edge.data import data_root
from edge.models.train_tree import fit_recipe
from edge.weather import label_config, load_weather, range_readings, rule_label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=data_root() / "weather" / "bmkg_semarang_2017_2023.csv")
    a = ap.parse_args()
    cfg = json.loads(label_config().read_text())
    X, y, dates = load_weather(a.data).labelled("rule")
    years = np.array([int(d[:4]) for d in dates])
    tr, va = years <= 2021, years == 2022
    R = range_readings(cfg, 50_000, seed=12_345)  # apart from the teaching draws (seed 0) and the card's check
    rows = []
    for depth in (6, 8, 10, 12):
        for n in (0, 10_000, 20_000, 40_000, 80_000):
            tree = fit_recipe(X[tr], y[tr], "rule", cfg, 0, max_depth=depth, n_range=n)
            rows.append([str(depth), f"{n:,}", f"{(tree.predict(X[va]) == y[va]).mean():.4f}",
                         f"{(tree.predict(R) == rule_label(R, cfg)).mean():.4f}", str(tree.tree_.node_count)])
    print(markdown_table(["depth", "range readings", "2022 rows", "range agreement", "nodes"], rows))


if __name__ == "__main__":
    main()
