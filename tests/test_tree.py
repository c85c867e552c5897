"""The trail tree: data validation, both labels, and bit-exact C / CPython / MicroPython outputs."""

from __future__ import annotations

import numpy as np
import pytest

from edge import runtime
from edge.data import data_root
from edge.errors import EdgeError
from edge.export.tree_formats import run_on_micropython
from edge.weather import heat_index_c, load_weather

WEATHER = data_root() / "weather" / "bmkg_semarang_2017_2023.csv"
needs_weather = pytest.mark.skipif(not WEATHER.exists(), reason="shared weather data not present")


@needs_weather
def test_dirty_rows_are_dropped_and_counted():
    t = load_weather(WEATHER)
    assert t.total_rows == 2525
    assert t.dropped == {"ff_x out of range": 29, "tn > tx": 2}  # the README's corrupt Aug 2017 winds and tx=3.6
    assert len(t.X) == 2525 - 31
    assert np.isfinite(t.X).all() and t.X[:, 2].max() <= 40 * 3.6


def test_bad_csv_rows(tmp_path):
    csv = tmp_path / "w.csv"
    csv.write_text(
        "date,tavg,rh_avg,ff_x,rr,tn,tx,ff_avg\n"
        "2023-01-01,27,80,5,0,24,31,3\n"
        "2023-01-02,nan,80,5,0,24,31,3\n"
        "2023-01-03,27,180,5,0,24,31,3\n"
        "2023-01-04,27,80,,0,24,31,3\n"
        "2023-01-05,36,70,12,25,30,38,6\n"
    )
    t = load_weather(csv)
    assert len(t.X) == 2 and sum(t.dropped.values()) == 3
    assert t.dropped["rh_avg out of range"] == 1
    assert list(t.y_outcome) == [0, 1]  # 25 mm of rain and a 12 m/s gust
    np.testing.assert_allclose(t.X[1], [36, 70, 12 * 3.6])
    (tmp_path / "bad.csv").write_text("date,temp\n2020-01-01,3\n")
    with pytest.raises(EdgeError, match="lacks the columns"):
        load_weather(tmp_path / "bad.csv")


def test_heat_index_matches_nws_table():
    # NWS chart: 90 F at 70 % RH -> 106 F; 80 F at 40 % -> 80 F
    assert heat_index_c(np.array([(90 - 32) * 5 / 9]), np.array([70.0]))[0] * 9 / 5 + 32 == pytest.approx(106, abs=1)
    assert heat_index_c(np.array([(80 - 32) * 5 / 9]), np.array([40.0]))[0] * 9 / 5 + 32 == pytest.approx(80, abs=1)


@needs_weather
def test_c_and_micropython_are_bit_exact_on_every_row(trail_run):
    from edge.models.checkpoint import load_model

    tree = load_model(trail_run / "runs" / "best.pkl")
    X = load_weather(WEATHER).X
    expected = tree.predict_proba(X)
    c_model = runtime.load(trail_run / "artifacts" / "trail" / "trail.c")
    py_model = runtime.load(trail_run / "artifacts" / "trail" / "trail.py")
    assert np.array_equal(c_model.predict(X), expected)
    assert np.array_equal(py_model.predict(X), expected)
    assert np.array_equal(run_on_micropython(trail_run / "artifacts" / "trail" / "trail.py", X), expected)
    man = py_model.manifest
    assert man.parity["max_abs_diff"] == 0 and man.parity["micropython"]["max_abs_diff"] == 0
    assert man.input.features == ["temperature_c", "humidity_pct", "wind_kmh"]


@needs_weather
def test_metrics_report_both_labels_and_splits(trail_run):
    import json

    m = json.loads((trail_run / "runs" / "metrics.json").read_text())
    for label in ("rule", "outcome"):
        assert m[label]["chronological"]["test_year"] == 2023
        assert 0.5 < m[label]["random_8_2"]["accuracy"] <= 1.0
    assert m["rule"]["random_8_2"]["accuracy"] > 0.95  # the rule label is a function of the features


def test_tree_export_is_honest_about_a_tampered_c_file(trail_run, tmp_path):
    import shutil

    src = trail_run / "artifacts" / "trail"
    shutil.copy(src / "trail.c", tmp_path / "trail.c")
    shutil.copy(src / "trail.c.json", tmp_path / "trail.c.json")
    text = (tmp_path / "trail.c").read_text()
    (tmp_path / "trail.c").write_text(text.replace("<=", ">", 1))
    from edge.export.pipeline import verify_artifact

    with pytest.raises(EdgeError, match="sha256"):
        verify_artifact(tmp_path / "trail.c")
