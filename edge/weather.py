"""BMKG daily weather rows -> the features the trail station measures (temperature C, humidity %, wind km/h),
impossible values dropped and counted, and both label definitions (the rule from published thresholds in
models/configs/trail_labels.json, and what happened that day). numpy and csv only: the runtime side reads it."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeError


def label_config() -> Path:
    """models/configs/trail_labels.json (installed as edge.models/configs): the thresholds behind both labels."""
    from edge.zoo import package_dir

    root = package_dir("edge.models")
    if root is None:
        raise EdgeError("edge.models is not installed (pip install -e .)")
    return root / "configs" / "trail_labels.json"


@dataclass
class WeatherTable:
    """Valid rows as features, both label definitions, dates, and what was dropped."""

    X: np.ndarray  # (n, 3) temperature C, humidity %, wind km/h
    y_rule: np.ndarray
    y_outcome: np.ndarray
    dates: list[str]
    dropped: dict[str, int]
    total_rows: int


def heat_index_c(t_c: np.ndarray, rh: np.ndarray) -> np.ndarray:
    """NWS heat index (Rothfusz regression with Steadman's simple formula below 80 F), in C."""
    t = np.asarray(t_c, dtype=np.float64) * 9 / 5 + 32
    rh = np.asarray(rh, dtype=np.float64)
    simple = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)
    full = (
        -42.379 + 2.04901523 * t + 10.14333127 * rh - 0.22475541 * t * rh - 6.83783e-3 * t * t
        - 5.481717e-2 * rh * rh + 1.22874e-3 * t * t * rh + 8.5282e-4 * t * rh * rh - 1.99e-6 * t * t * rh * rh
    )
    hi = np.where((simple + t) / 2 >= 80, full, simple)
    return (hi - 32) * 5 / 9


def rule_label(X: np.ndarray, cfg: dict) -> np.ndarray:
    """Label (a): published hiking-safety thresholds from the config file."""
    r = cfg["rule"]
    hi = heat_index_c(X[:, 0], X[:, 1])
    bad = (hi >= r["heat_index_c_max"]) | (X[:, 2] >= r["wind_kmh_max"]) | (X[:, 1] < r["humidity_pct_min"])
    return bad.astype(np.int64)


def load_weather(path: Path, cfg_path: Path | None = None) -> WeatherTable:
    """Read the BMKG CSV, drop impossible values (counted), build features and both labels."""
    cfg = json.loads(Path(cfg_path or label_config()).read_text())
    if not Path(path).exists():
        raise EdgeError(f"weather data not found: {path} (set EDGE_DATA or pass --data)")
    ranges = cfg["valid_ranges"]
    needed = ["date", "tavg", "rh_avg", "ff_x", "rr"]
    rows, dates, outcome = [], [], []
    dropped: dict[str, int] = {}
    total = 0
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise EdgeError(f"{path} lacks the columns {missing}")
        for rec in reader:
            total += 1
            reason = None
            vals: dict[str, float] = {}
            for col in ["tavg", "rh_avg", "ff_x", "rr", "tn", "tx", "ff_avg"]:
                raw = (rec.get(col) or "").strip()
                try:
                    v = float(raw)
                except ValueError:
                    v = math.nan
                if col in needed and not math.isfinite(v):
                    reason = f"{col} missing"
                    break
                lo, hi = ranges.get(col, (-math.inf, math.inf))
                if math.isfinite(v) and not lo <= v <= hi:
                    reason = f"{col} out of range"
                    break
                vals[col] = v
            if reason is None and vals["tn"] > vals["tx"]:
                reason = "tn > tx"
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            rows.append([vals["tavg"], vals["rh_avg"], vals["ff_x"] * 3.6])
            o = cfg["outcome"]
            outcome.append(int(vals["rr"] >= o["rain_mm_min"] or vals["ff_x"] >= o["gust_ms_min"]))
            dates.append(rec["date"])
    if not rows:
        raise EdgeError(f"no valid rows in {path}")
    X = np.array(rows, dtype=np.float64)
    return WeatherTable(X, rule_label(X, cfg), np.array(outcome, dtype=np.int64), dates, dropped, total)
