"""Export the trail tree to C and MicroPython; parity is bit-exact on every row of the weather data and on
readings over the station's whole range."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import runtime
from edge.data import data_root
from edge.errors import EdgeError
from edge.export.reference import default_checkpoint, load_reference
from edge.export.tree_formats import export_c, export_micropython, micropython_binary, run_on_micropython
from edge.families import Family
from edge.formats import Format, artifact_name
from edge.manifest import Manifest, write_manifest
from edge.parity import check, parity

# readings drawn over the station's whole range for the parity check (the deployed tree answers for all of them)
RANGE_READINGS = 5_000


def weather_rows() -> tuple[np.ndarray, str]:
    """Every valid row of the weather data (a grid over the station's range when the data is absent), plus
    readings drawn over that range: the tree must be bit-exact wherever the station can read, not only on
    Semarang's days."""
    import json

    from edge.weather import label_config, load_weather, range_readings, station_range

    cfg = json.loads(label_config().read_text())
    drawn = range_readings(cfg, RANGE_READINGS, seed=2024)
    also = f" + {RANGE_READINGS} readings drawn over the station's range"
    path = data_root() / "weather" / "bmkg_semarang_2017_2023.csv"
    try:
        table = load_weather(path)
        return np.concatenate([table.X, drawn]), f"real: every valid row of {path.name} ({len(table.X)} rows){also}"
    except EdgeError:
        (t0, t1), (h0, h1), (w0, w1) = station_range(cfg)
        # about 1 C, 5 % and 6 km/h apart, both ends included whatever the config's range
        t, h, w = np.meshgrid(*(np.linspace(a, b, max(2, round((b - a) / step) + 1))
                                for (a, b), step in zip(((t0, t1), (h0, h1), (w0, w1)), (1.0, 5.0, 6.0))))
        grid = np.stack([t.ravel(), h.ravel(), w.ravel()], 1)
        return np.concatenate([grid, drawn]), f"synthetic: a grid over the station's range ({len(grid)} rows){also}"


def export_tree(family: Family, formats: list[Format], out: Path, checkpoint: Path | None,
                progress: Any = None) -> list:
    from edge.export.pipeline import ExportResult, base_manifest

    checkpoint = checkpoint or default_checkpoint(family)
    ref = load_reference(family, checkpoint, out, None)
    rows, source = weather_rows()
    expected = ref.model.predict_proba(rows)
    results = []
    for fmt in formats:
        res = ExportResult(family.name, fmt.name, "failed")
        t0 = time.perf_counter()
        path = out / artifact_name(family.name, fmt)
        try:
            notes = (export_c if fmt.name == "c" else export_micropython)(ref.model, path)
            man: Manifest = base_manifest(ref, fmt)
            man.exporter.update(notes)
            write_manifest(path, man)
            p = tree_parity(path, fmt.name, expected, rows, source)
            broken = p.pop("broken")
            man.parity = p
            write_manifest(path, man)
            res.parity, res.artifact, res.size_bytes = p, str(path), man.size_bytes
            res.status = "ok" if not broken else "failed"
            res.reason = "" if not broken else "not bit-exact: " + "; ".join(broken)
        except EdgeError as exc:
            res.reason = str(exc)
        res.seconds = round(time.perf_counter() - t0, 2)
        results.append(res)
        if progress is not None:
            progress.update(1)
    return results


def tree_parity(artifact: Path, fmt: str, expected: np.ndarray, rows: np.ndarray, source: str) -> dict[str, Any]:
    """Bit-exactness of a tree artifact (and, for MicroPython, of the real interpreter) against scikit-learn."""
    p = parity(expected, runtime.load(artifact).predict(rows), "classify")
    p["inputs"] = source
    if fmt == "micropython" and micropython_binary():
        p["micropython"] = parity(expected, run_on_micropython(artifact, rows), "classify")
        p["micropython_interpreter"] = "MicroPython unix port"
    p["broken"] = check(p, "exact") + (check(p["micropython"], "exact") if "micropython" in p else [])
    p["within_tolerance"] = not p["broken"]
    return p


def verify_tree(artifact: Path, man: Manifest) -> dict[str, Any]:
    from edge.models.checkpoint import load_model

    estimator = load_model(Path(man.source["checkpoint"]))
    rows, source = weather_rows()
    return tree_parity(artifact, man.format, estimator.predict_proba(rows), rows, source)
