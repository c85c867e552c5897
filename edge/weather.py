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

FEATURE_COLUMNS = ("tavg", "rh_avg", "ff_x")  # what the station measures; rr (the outcome) may be missing


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
    outcome_known: np.ndarray  # False where the day's rainfall is missing: y_outcome is -1 there
    no_outcome: int
    station: dict[str, str]
    layout: str

    def labelled(self, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Features, labels and dates of the rows that have the label ('rule': all; 'outcome': days with rainfall)."""
        if label == "rule":
            return self.X, self.y_rule, self.dates
        keep = self.outcome_known
        return self.X[keep], self.y_outcome[keep], [d for d, k in zip(self.dates, keep) if k]


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


def wind_chill_c(t_c: np.ndarray, wind_kmh: np.ndarray) -> np.ndarray:
    """Environment Canada / NWS wind chill index (2001), in C; the air temperature where it does not apply (above
    10 C, or wind under 4.8 km/h)."""
    t = np.asarray(t_c, dtype=np.float64)
    v = np.maximum(np.asarray(wind_kmh, dtype=np.float64), 0.0) ** 0.16
    wci = 13.12 + 0.6215 * t - 11.37 * v + 0.3965 * t * v
    return np.where((t <= 10) & (np.asarray(wind_kmh) >= 4.8), wci, t)


def rule_label(X: np.ndarray, cfg: dict) -> np.ndarray:
    """Label (a): published hiking-safety thresholds from the config file (heat index, wind, dry air, and the
    wind chill where the config has a cold limit)."""
    r = cfg["rule"]
    hi = heat_index_c(X[:, 0], X[:, 1])
    bad = (hi >= r["heat_index_c_max"]) | (X[:, 2] >= r["wind_kmh_max"]) | (X[:, 1] < r["humidity_pct_min"])
    if "wind_chill_c_min" in r:
        bad |= wind_chill_c(X[:, 0], X[:, 2]) <= r["wind_chill_c_min"]
    return bad.astype(np.int64)


def station_range(cfg: dict) -> np.ndarray:
    """The (3, 2) low/high of what the station can read and the tree must answer for: temperature C, humidity %,
    wind km/h, from the config's ``station_range``."""
    r = cfg["station_range"]
    return np.array([r["temperature_c"], r["humidity_pct"], r["wind_kmh"]], dtype=np.float64)


def range_readings(cfg: dict, n: int, seed: int) -> np.ndarray:
    """``n`` readings drawn uniformly over the station's range (the rule label is a function of them, so the tree
    can be taught and checked on readings no Semarang day had: a summit's cold, a dry season, a storm)."""
    lo, hi = station_range(cfg).T
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, 3))


# ---- a station's daily table ---------------------------------------------------------------------------

MISSING_CODES = {"", "-", "--", "8888", "9999", "8888.0", "9999.0", "nan", "na", "n/a", "null"}
DATE_NAMES = {"date", "tanggal"}
XLSX_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


@dataclass
class DailyTable:
    """A station's daily rows as read: lower-case column names, ISO dates, values as text ('' = missing, '.' as the
    decimal mark), the station lines found above the header, and how the file was read."""

    columns: list[str]
    rows: list[dict[str, str]]
    station: dict[str, str]
    layout: str


def _iso_date(text: str) -> str | None:
    """yyyy-mm-dd, dd-mm-yyyy or dd/mm/yyyy (BMKG Data Online writes dd-mm-yyyy), or a spreadsheet's date cell stored
    as a serial number (days since 1899-12-30) -> yyyy-mm-dd; None if not a date."""
    import datetime as dt
    import re

    text = text.strip().split(" ")[0].split("T")[0]
    if re.fullmatch(r"\d{5}(\.0+)?", text) and 20_000 < float(text) < 80_000:  # 1954..2119
        return (dt.date(1899, 12, 30) + dt.timedelta(days=int(float(text)))).isoformat()
    for fmt in ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            pass
    return None


def _value(text: str, decimal_comma: bool) -> str:
    """One cell as plain text: BMKG's 8888 (not measured) and 9999 (no data), '-' and blanks -> ''."""
    text = text.strip()
    if decimal_comma:
        text = text.replace(",", ".")
    return "" if text.lower() in MISSING_CODES else text


def _xlsx_rows(path: Path) -> list[list[str]]:
    """The first worksheet of an .xlsx file as rows of text, with the standard library alone (BMKG Data Online's
    download format). Date cells come back as their serial numbers (``_iso_date`` reads them)."""
    import re
    import xml.etree.ElementTree as ET
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise EdgeError(f"{path}: not a readable .xlsx file ({exc}); save it as CSV and pass that") from None
    with zf:
        names = zf.namelist()
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            for si in ET.fromstring(zf.read("xl/sharedStrings.xml")).iter(f"{XLSX_NS}si"):
                shared.append("".join(t.text or "" for t in si.iter(f"{XLSX_NS}t")))
        sheets = sorted((n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)),
                        key=lambda n: int(re.sub(r"\D", "", n.rsplit("/", 1)[1])))
        if not sheets:
            raise EdgeError(f"{path}: the workbook has no worksheet")
        root = ET.fromstring(zf.read(sheets[0]))
    out: list[list[str]] = []
    for row in root.iter(f"{XLSX_NS}row"):
        cells: dict[int, str] = {}
        for c in row.iter(f"{XLSX_NS}c"):
            col = 0
            for ch in re.sub(r"\d", "", c.get("r", "")) or "A":
                col = col * 26 + ord(ch.upper()) - 64
            kind, v = c.get("t"), c.find(f"{XLSX_NS}v")
            if kind == "s" and v is not None:
                text = shared[int(v.text or 0)]
            elif kind == "inlineStr":
                text = "".join(t.text or "" for t in c.iter(f"{XLSX_NS}t"))
            else:
                text = (v.text or "") if v is not None else ""
            cells[col - 1] = text
        if cells:
            out.append([cells.get(i, "") for i in range(max(cells) + 1)])
    return out


def read_daily_table(path: Path) -> DailyTable:
    """A daily table as BMKG Data Online exports it, or as this project's data set has it: station lines
    ('ID WMO : 96835') above the header, a 'Tanggal' or 'date' column, dd-mm-yyyy or ISO dates, ',', ';' or tab
    separators (';' with decimal commas, as a spreadsheet in an Indonesian locale saves it), 8888 / 9999 for missing
    values, and notes ('KETERANGAN: ...') below the table. .xlsx files are read too."""
    import re

    path = Path(path)
    if not path.exists():
        raise EdgeError(f"weather data not found: {path} (set EDGE_DATA or pass --data)")
    if path.suffix.lower() == ".xls":
        raise EdgeError(f"{path}: the old binary .xls format is not read; save it as .xlsx or CSV")
    if path.suffix.lower() == ".xlsx":
        grid, sep, decimal_comma = _xlsx_rows(path), "xlsx", False
    else:
        raw = path.read_bytes()
        if raw[:2] == b"PK":
            raise EdgeError(f"{path} is a spreadsheet (zip), not text: name it .xlsx, or save it as CSV")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        lines = text.splitlines()
        # the separator is the header's: the line with a 'date' / 'Tanggal' cell (not a station line's 'Update')
        head = next((ln for ln in lines if {c.strip().lower() for c in re.split(r"[;,\t]", ln)} & DATE_NAMES), "")
        sep = max((";", ",", "\t"), key=head.count)
        decimal_comma = sep != ","
        grid = list(csv.reader(lines, delimiter=sep))
    header_at = next((i for i, r in enumerate(grid)
                      if {c.strip().lower() for c in r} & DATE_NAMES), None)
    if header_at is None:
        raise EdgeError(f"{path}: no header row with a 'date' (or BMKG's 'Tanggal') column")
    station: dict[str, str] = {}
    for r in grid[:header_at]:  # 'ID WMO : 96835', 'Nama Stasiun : ...' (one cell, or key and value apart)
        cells = [c.strip() for c in r if c.strip()]
        key, _, val = " ".join(cells).partition(":")
        if key.strip() and val.strip():
            station[re.sub(r"\s+", " ", key.strip())] = val.strip()
    columns = [c.strip().lower() for c in grid[header_at]]
    date_col = next(i for i, c in enumerate(columns) if c in DATE_NAMES)
    columns[date_col] = "date"
    rows: list[dict[str, str]] = []
    for r in grid[header_at + 1:]:
        if not any(c.strip() for c in r):
            continue
        date = _iso_date(r[date_col]) if date_col < len(r) else None
        if date is None:  # the notes below the table ('KETERANGAN:', '8888: data tidak terukur', ...)
            break
        rec = {c: _value(r[i], decimal_comma) if i < len(r) else "" for i, c in enumerate(columns) if c}
        rec["date"] = date
        rows.append(rec)
    layout = {"xlsx": "xlsx", ",": "comma-separated", ";": "semicolon-separated, decimal commas",
              "\t": "tab-separated"}[sep]
    if header_at:
        layout += f", {header_at} line(s) above the header"
    return DailyTable(columns, rows, station, layout)


def load_weather(path: Path, cfg_path: Path | None = None) -> WeatherTable:
    """Read a station's daily table (``read_daily_table``), drop impossible values (counted), build the features and
    both labels. A day with the three readings but no rainfall keeps its rule label; its outcome is unknown
    (``outcome_known`` False, counted in ``no_outcome``)."""
    cfg = json.loads(Path(cfg_path or label_config()).read_text())
    daily = read_daily_table(Path(path))
    ranges = cfg["valid_ranges"]
    missing = [c for c in FEATURE_COLUMNS if c not in daily.columns]
    if missing:
        raise EdgeError(f"{path} lacks the columns {missing} (has {[c for c in daily.columns if c]})")
    rows, dates, outcome, known = [], [], [], []
    dropped: dict[str, int] = {}
    for rec in daily.rows:
        reason = None
        vals: dict[str, float] = {}
        for col in ["tavg", "rh_avg", "ff_x", "rr", "tn", "tx", "ff_avg"]:
            try:
                v = float(rec.get(col) or "nan")
            except ValueError:
                v = math.nan
            if col in FEATURE_COLUMNS and not math.isfinite(v):
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
        known.append(math.isfinite(vals["rr"]))
        outcome.append(int(vals["rr"] >= o["rain_mm_min"] or vals["ff_x"] >= o["gust_ms_min"]) if known[-1] else -1)
        dates.append(rec["date"])
    if not rows:
        raise EdgeError(f"no valid rows in {path} ({len(daily.rows)} read; dropped: {dropped or 'none'})")
    X = np.array(rows, dtype=np.float64)
    ok = np.array(known, dtype=bool)
    return WeatherTable(X, rule_label(X, cfg), np.array(outcome, dtype=np.int64), dates, dropped, len(daily.rows),
                        ok, int((~ok).sum()), daily.station, daily.layout)
