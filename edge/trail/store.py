"""Trail readings: validation, classification with the trained tree, and the SQLite store (WAL,
idempotent on (device, seq) so backfills and QoS1 re-deliveries never duplicate)."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

FEATURES = ("temperature_c", "humidity_pct", "wind_kmh")
RANGES = {"temperature_c": (-40.0, 60.0), "humidity_pct": (0.0, 100.0), "wind_kmh": (0.0, 250.0)}
IDEAL = {"temperature_c": (10.0, 30.0), "humidity_pct": (40.0, 90.0), "wind_kmh": (0.0, 38.0)}  # shown on the page
DEVICE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_PAYLOAD = 2048

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    device TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, received REAL NOT NULL,
    temperature_c REAL NOT NULL, humidity_pct REAL NOT NULL, wind_kmh REAL NOT NULL,
    label TEXT NOT NULL, device_label TEXT, via TEXT NOT NULL,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_time ON readings(device, ts);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, via TEXT NOT NULL, reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stations (
    device TEXT PRIMARY KEY, status TEXT NOT NULL, changed REAL NOT NULL
);
"""


class Invalid(EdgeError):
    """A reading that fails the schema or range checks."""


def validate(payload: bytes | str | dict) -> dict[str, Any]:
    """Parse and check one reading; raise Invalid with the reason."""
    if isinstance(payload, (bytes, bytearray)):
        if len(payload) > MAX_PAYLOAD:
            raise Invalid(f"payload larger than {MAX_PAYLOAD} bytes")
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("payload is not UTF-8") from None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise Invalid(f"payload is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict):
        raise Invalid("payload must be a JSON object")
    dev = payload.get("device")
    if not isinstance(dev, str) or not DEVICE_RE.match(dev):
        raise Invalid("'device' must be 1-32 letters, digits, _ or -")
    seq, ts = payload.get("seq"), payload.get("ts")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        raise Invalid("'seq' must be a non-negative integer")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or not 0 <= ts < 2**40:
        raise Invalid("'ts' must be a unix time in seconds")
    out = {"device": dev, "seq": seq, "ts": int(ts)}
    for f in FEATURES:
        v = payload.get(f)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Invalid(f"'{f}' must be a number")
        if not math.isfinite(v):
            raise Invalid(f"'{f}' is NaN or infinite")
        lo, hi = RANGES[f]
        if not lo <= v <= hi:
            raise Invalid(f"'{f}' = {v} is outside {lo}..{hi}")
        out[f] = float(v)
    label = payload.get("label")
    out["device_label"] = label if isinstance(label, str) and len(label) <= 16 else None
    return out


class Classifier:
    """The trained trail tree through the torch-free runtime (the same tree that runs on the station)."""

    def __init__(self, artifact: Path | None = None) -> None:
        from edge import runtime

        if artifact is None:
            from edge.cli import _zoo

            artifact = _zoo() / "trail" / "trail.py"
        self.model = runtime.load(artifact)
        self.classes = list(self.model.manifest.classes or ["Aman", "Berbahaya"])

    def many(self, rows: list[dict[str, Any]]) -> list[str]:
        """Labels for a batch of validated readings (one runtime call)."""
        import numpy as np

        if not rows:
            return []
        x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=np.float32)
        return [self.classes[int(i)] for i in np.argmax(self.model.predict(x), axis=1)]


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)


class Store:
    """SQLite in WAL mode; one connection shared by the hub's threads under a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise EdgeError(f"cannot open the hub database {self.path}: {exc}") from None
        self.lock = threading.Lock()

    def add_many(self, rows: list[tuple[dict[str, Any], str]], via: str,
                 rejects: list[tuple[bytes | str, str]] = ()) -> list[bool]:
        """Insert readings (and log rejects) in one transaction; per reading True if new, False if a duplicate.
        Nothing is acknowledged to a sender before this returns, so a crash loses only unacknowledged work."""
        now = time.time()
        new = []
        with self.lock:
            try:
                for r, label in rows:
                    cur = self.db.execute(
                        "INSERT OR IGNORE INTO readings VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (r["device"], r["seq"], r["ts"], now, r["temperature_c"], r["humidity_pct"], r["wind_kmh"],
                         label, r.get("device_label"), via))
                    new.append(cur.rowcount == 1)
                self.db.executemany("INSERT INTO rejects (received, via, reason, raw) VALUES (?,?,?,?)",
                                    [(now, via, reason, _text(raw)[:500]) for raw, reason in rejects])
                self.db.commit()
            except BaseException:
                self.db.rollback()
                raise
        return new

    def set_status(self, device: str, status: str) -> None:
        with self.lock:
            self.db.execute("INSERT INTO stations VALUES (?,?,?) ON CONFLICT(device) DO UPDATE SET "
                            "status=excluded.status, changed=excluded.changed", (device, status, time.time()))
            self.db.commit()

    def query(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self.lock:
            cur = self.db.execute(sql, args)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def close(self) -> None:
        self.db.close()
