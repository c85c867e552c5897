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
def test_c_and_micropython_are_bit_exact_on_every_row_and_over_the_range(trail_run):
    from edge.models.checkpoint import load_model
    from edge.weather import label_config, range_readings

    tree = load_model(trail_run / "runs" / "best.pkl")
    cfg = __import__("json").loads(label_config().read_text())
    X = np.concatenate([load_weather(WEATHER).X, range_readings(cfg, 2_000, seed=5)])  # and far from Semarang
    expected = tree.predict_proba(X)
    c_model = runtime.load(trail_run / "artifacts" / "trail" / "trail.c")
    py_model = runtime.load(trail_run / "artifacts" / "trail" / "trail.py")
    assert np.array_equal(c_model.predict(X), expected)
    assert np.array_equal(py_model.predict(X), expected)
    assert np.array_equal(run_on_micropython(trail_run / "artifacts" / "trail" / "trail.py", X), expected)
    man = py_model.manifest
    assert man.parity["max_abs_diff"] == 0 and man.parity["micropython"]["max_abs_diff"] == 0
    # the export's own check covered the station's range too, not only Semarang's 2,494 days
    assert "readings drawn over the station's range" in man.parity["inputs"] and man.parity["n"] == 2494 + 5000
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


def test_wind_chill_matches_environment_canada_chart():
    from edge.weather import wind_chill_c

    # Environment Canada's wind chill chart: -10 C at 20 km/h -> -18; -20 C at 30 km/h -> -33; 5 C at 10 km/h -> 3
    wc = wind_chill_c(np.array([-10.0, -20.0, 5.0, 20.0, -5.0]), np.array([20.0, 30.0, 10.0, 30.0, 2.0]))
    np.testing.assert_allclose(np.round(wc), [-18, -33, 3, 20, -5])  # 20 C and a 2 km/h breeze: the air's own


BMKG_ONLINE = """Updated, daily data, 2021
ID WMO;: 96595
Nama Stasiun;: Stasiun Meteorologi Contoh
Lintang;: -7,38
Bujur;: 112,78
Elevasi;: 3

Tanggal;Tn;Tx;Tavg;RH_avg;RR;ss;ff_x;ddd_x;ff_avg;ddd_car
01-01-2021;23,4;31,2;26,8;86;12,5;3,2;5;270;2;W
02-01-2021;23,0;30,1;26,1;89;8888;0,5;4;270;2;W
03-01-2021;22,8;32,0;9999;88;0;4;3;180;1;S
04-01-2021;24;34,6;31,5;75;25;6;12;90;4;E
05-01-2021;-;33;28;20;0;7;4;90;2;E

KETERANGAN:
8888: data tidak terukur
9999: Tidak Ada Data (tidak dilakukan pengukuran)
"""


def _check_online_rows(t):
    assert t.total_rows == 5 and t.dropped == {"tavg missing": 1}  # the notes below the table are no rows
    assert t.dates == ["2021-01-01", "2021-01-02", "2021-01-04", "2021-01-05"]
    np.testing.assert_allclose(t.X[0], [26.8, 86, 5 * 3.6])
    assert t.station["ID WMO"] == "96595" and t.station["Nama Stasiun"] == "Stasiun Meteorologi Contoh"
    # no rainfall on the 2nd (8888): kept for the rule label, left out of the outcome label
    assert list(t.outcome_known) == [True, False, True, True] and t.no_outcome == 1
    X, y, dates = t.labelled("outcome")
    assert list(y) == [0, 1, 0] and dates == ["2021-01-01", "2021-01-04", "2021-01-05"]
    assert len(t.labelled("rule")[1]) == 4 and t.y_rule[3] == 1  # 20 % humidity is dry air


def test_bmkg_data_online_csv_as_a_spreadsheet_saves_it(tmp_path):
    """BMKG Data Online's layout saved from a spreadsheet in an Indonesian locale: station lines, Tanggal, dd-mm-yyyy,
    ';' with decimal commas, 8888 / 9999, '-', and notes below the table."""
    f = tmp_path / "laporan_iklim_harian.csv"
    f.write_text(BMKG_ONLINE, encoding="utf-8-sig")
    t = load_weather(f)
    _check_online_rows(t)
    assert t.layout == "semicolon-separated, decimal commas, 7 line(s) above the header"
    comma = tmp_path / "comma.csv"  # the same table comma-separated (decimal points), one date a spreadsheet serial
    comma.write_text(BMKG_ONLINE.replace(",", ".").replace(";", ",").replace("04-01-2021", "44200"))
    _check_online_rows(load_weather(comma))


def test_bmkg_data_online_xlsx_is_read(tmp_path):
    """The .xlsx BMKG Data Online downloads, written by openpyxl: text and Excel-serial dates, numbers and codes."""
    import datetime as dt

    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    for line in BMKG_ONLINE.splitlines():
        cells = line.split(";") if line else []
        row: list = []
        for i, c in enumerate(cells):
            try:
                row.append(float(c.replace(",", ".")) if i else c)
            except ValueError:
                row.append(c)
        if row and row[0] == "04-01-2021":
            row[0] = dt.datetime(2021, 1, 4)  # a date cell, stored as a serial number
        ws.append(row)
    f = tmp_path / "laporan_iklim_harian.xlsx"
    wb.save(f)
    t = load_weather(f)
    _check_online_rows(t)
    assert t.layout.startswith("xlsx")
    (tmp_path / "renamed.csv").write_bytes(f.read_bytes())
    with pytest.raises(EdgeError, match="spreadsheet"):
        load_weather(tmp_path / "renamed.csv")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(EdgeError, match=r"\.xls format"):
        load_weather(tmp_path / "old.xls")
    (tmp_path / "nohead.csv").write_text("a;b\n1;2\n")
    with pytest.raises(EdgeError, match="Tanggal"):
        load_weather(tmp_path / "nohead.csv")


@needs_weather
def test_one_year_in_bmkg_layout_reads_as_the_data_set_and_trains(tmp_path):
    """A year of the shared data rewritten as BMKG Data Online writes it reads to the same rows; a file of one year
    trains without a chronological split (said in metrics and card) instead of failing."""
    from edge.models.cards import _trail_section
    from edge.models.train_tree import train_trail

    head, *rows = WEATHER.read_text().splitlines()
    cols = head.split(",")
    names = {"date": "Tanggal", "tn": "Tn", "tx": "Tx", "tavg": "Tavg", "rh_avg": "RH_avg", "rr": "RR"}
    year = [r.split(",") for r in rows if r.startswith("2023-")]
    out = ["ID WMO : 96835", "", ";".join(names.get(c, c) for c in cols if c != "station")]
    for r in year:
        rec = dict(zip(cols, r))
        y, m, d = rec["date"].split("-")
        rec["date"] = f"{d}-{m}-{y}"
        out.append(";".join((rec[c] or "9999").replace(".", ",") for c in cols if c != "station"))
    bmkg = tmp_path / "semarang_2023_bmkg.csv"
    bmkg.write_text("\n".join([*out, "", "KETERANGAN:", "8888: data tidak terukur"]) + "\n")
    plain = tmp_path / "semarang_2023.csv"
    plain.write_text("\n".join([head, *(",".join(r) for r in year)]) + "\n")
    a, b = load_weather(bmkg), load_weather(plain)
    assert a.dates == b.dates and len(a.dates) == 365
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y_outcome, b.y_outcome)
    m = train_trail(bmkg, tmp_path / "run")
    assert m["rule"]["chronological"] is None and "2023 alone" in m["rule"]["chronological_skipped"]
    assert m["rule"]["random_8_2"]["n_test"] == 73 and m["station"] == {"ID WMO": "96835"}
    card = "\n".join(_trail_section(m, "paper"))
    assert "| rule | chronological | - |" in card and "no earlier year" in card


def test_the_zoo_tree_follows_its_rule_over_the_station_range():
    """The deployed tree (torch- and scikit-learn-free runtime) on readings over everything the station can read,
    not only Semarang's days: a summit's cold, a dry season, a storm."""
    import json

    from edge.weather import label_config, range_readings, rule_label
    from edge.zoo import resolve_model

    cfg = json.loads(label_config().read_text())
    X = range_readings(cfg, 20_000, seed=777)
    pred = runtime.load(resolve_model("trail")).predict(X.astype(np.float32)).argmax(1)
    assert (pred == rule_label(X, cfg)).mean() >= 0.99
    cases = np.array([[25.0, 20.0, 5.0], [-5.0, 80.0, 40.0], [-8.0, 70.0, 30.0], [24.0, 80.0, 10.0]])
    assert list(rule_label(cases, cfg)) == [1, 1, 1, 0]  # dry air; storm wind; wind chill -17 C; a mild day
    assert list(runtime.load(resolve_model("trail")).predict(cases.astype(np.float32)).argmax(1)) == [1, 1, 1, 0]


def test_eval_on_a_bmkg_online_file_leaves_days_without_rainfall_out_of_the_outcome(tmp_path):
    from edge.evaluate import evaluate, markdown
    from edge.zoo import resolve_model

    f = tmp_path / "laporan_iklim_harian.csv"
    f.write_text(BMKG_ONLINE)
    rep = evaluate(resolve_model("trail"), f, label="outcome", progress=False)
    assert (rep["rows"], rep["valid_rows"], rep["scored_rows"], rep["without_rainfall"]) == (5, 4, 3, 1)
    assert rep["station"]["ID WMO"] == "96595" and sum(map(sum, rep["confusion"])) == 3
    md = markdown(rep)
    assert "Read as semicolon-separated" in md and "1 without rainfall left out of the outcome label" in md
    rule = evaluate(resolve_model("trail"), f, progress=False)
    assert rule["label"] == "rule" and rule["scored_rows"] == 4 and rule["without_rainfall"] == 0
    assert rule["accuracy"] == 1.0  # the dry day, the storm-free humid days: the tree says what the rule says


def test_tree_parity_rows_span_the_station_range_with_or_without_the_data(monkeypatch, tmp_path):
    """What `edge export trail` checks bit-exactness on: the data rows (when present) and the whole station range,
    a summit's -10 C and a storm's 108 km/h included; without the data, a grid over that range."""
    import json

    from edge.export.tree_export import RANGE_READINGS, weather_rows
    from edge.weather import label_config, station_range

    lo, hi = station_range(json.loads(label_config().read_text())).T
    monkeypatch.setenv("EDGE_DATA", str(tmp_path / "no-data"))
    rows, source = weather_rows()
    assert source.startswith("synthetic: a grid over the station's range")
    np.testing.assert_array_equal(rows.min(0), lo)
    np.testing.assert_array_equal(rows.max(0), hi)
    assert len(rows) > RANGE_READINGS and np.isfinite(rows).all()
