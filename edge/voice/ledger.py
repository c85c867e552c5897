"""The voice ledger: entries in SQLite (WAL), idempotent by the client's entry id, CSV report with totals."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    type TEXT,
    description TEXT NOT NULL DEFAULT '',
    amount INTEGER,
    currency TEXT NOT NULL DEFAULT 'IDR',
    confidence REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'cli'
);
CREATE INDEX IF NOT EXISTS entries_created ON entries(created_at);
"""
COLUMNS = ["entry_id", "created_at", "type", "description", "amount", "currency", "confidence", "status",
           "reasons", "text", "source"]


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class Ledger:
    """One SQLite file; safe to share between the server's threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise EdgeError(f"cannot open the ledger {self.path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def add(self, parsed: dict[str, Any], entry_id: str | None = None, created_at: str | None = None,
            source: str = "cli") -> tuple[dict[str, Any], bool]:
        """Store a parsed sentence; returns (row, created). A replayed entry_id returns the stored row."""
        entry_id = entry_id or uuid.uuid4().hex
        row = {
            "entry_id": entry_id,
            "created_at": created_at or _now(),
            "type": parsed.get("type"),
            "description": parsed.get("description") or "",
            "amount": parsed.get("amount"),
            "currency": parsed.get("currency") or "IDR",
            "confidence": float(parsed.get("confidence") or 0.0),
            "status": "needs_review" if parsed.get("needs_review") else "ok",
            "reasons": "; ".join(parsed.get("reasons") or []),
            "text": parsed.get("text") or "",
            "source": source,
        }
        with self._lock:
            try:
                cur = self._db.execute(
                    f"INSERT INTO entries ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                    "ON CONFLICT(entry_id) DO NOTHING", [row[c] for c in COLUMNS])
                self._db.commit()
            except sqlite3.Error as exc:
                raise EdgeError(f"cannot write to the ledger {self.path}: {exc}") from None
            created = cur.rowcount == 1
        return (row if created else self.get(entry_id) or row), created

    def get(self, entry_id: str) -> dict[str, Any] | None:
        cur = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM entries WHERE entry_id = ?", (entry_id,))
        r = cur.fetchone()
        return dict(zip(COLUMNS, r)) if r else None

    def entries(self, month: str | None = None) -> list[dict[str, Any]]:
        """All entries, or those of one month ('2026-11'), oldest first."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM entries"
        args: tuple = ()
        if month:
            try:
                datetime.strptime(month, "%Y-%m")
            except ValueError:
                raise EdgeError(f"--month takes YYYY-MM, got '{month}'") from None
            sql += " WHERE substr(created_at, 1, 7) = ?"
            args = (month,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at, id", args).fetchall()
        return [dict(zip(COLUMNS, r)) for r in rows]


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {"expense": 0, "income": 0, "needs_review": 0}
    for r in rows:
        if r["status"] == "ok" and r["type"] in ("expense", "income") and r["amount"] is not None:
            out[r["type"]] += int(r["amount"])
        else:
            out["needs_review"] += 1
    out["balance"] = out["income"] - out["expense"]
    return out


def report_csv(rows: list[dict[str, Any]]) -> str:
    """date, type, description, amount, status, then totals per type; unparsed entries kept as needs_review."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["date", "type", "description", "amount", "currency", "status", "text"])
    for r in rows:
        w.writerow([r["created_at"][:10], r["type"] or "", r["description"], "" if r["amount"] is None else r["amount"],
                    r["currency"], r["status"], r["text"]])
    t = totals(rows)
    w.writerow([])
    w.writerow(["total", "expense", "", t["expense"], "IDR", "", ""])
    w.writerow(["total", "income", "", t["income"], "IDR", "", ""])
    w.writerow(["total", "balance", "", t["balance"], "IDR", "", ""])
    w.writerow(["total", "needs_review", "", t["needs_review"], "", "", ""])
    return buf.getvalue()
