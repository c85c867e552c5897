"""The attendance database (SQLite, WAL): people, their embeddings as float32 blobs, and events.

Events carry a ``published`` flag: the MQTT publisher marks them only after the broker acknowledged them, so
a broker that is down only delays events, and nothing is lost.  A database that cannot be written (read-only file,
locked past the timeout) raises :class:`StoreError` with what to do.
"""

from __future__ import annotations

import csv
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError

RELIT_TAG = " (lit from the "  # in the source of a side-lit copy of an enrolment shot: "shot.jpg (lit from the left)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE COLLATE NOCASE, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedder TEXT NOT NULL, vector BLOB NOT NULL, source TEXT, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_by ON embeddings(embedder, person_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, person_id INTEGER REFERENCES people(id),
    name TEXT NOT NULL, kind TEXT NOT NULL, distance REAL, embedder TEXT NOT NULL, snapshot TEXT,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_time ON events(ts);
CREATE INDEX IF NOT EXISTS events_unpublished ON events(published) WHERE published = 0;
"""


class StoreError(EdgeError):
    """The attendance database cannot be read or written; ``locked`` when waiting may help."""

    def __init__(self, msg: str, locked: bool = False) -> None:
        super().__init__(msg)
        self.locked = locked


class Store:
    def __init__(self, path: Path | str, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False,
                                      isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys=ON")
            if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self.db.execute("PRAGMA user_version = 1")  # a write: a read-only file fails here, not mid-run
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _error(self.path, exc) from None

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self.lock:
            try:
                return self.db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _error(self.path, exc) from None

    # -------------------------------------------------------------- people
    def person(self, name: str, create: bool = False) -> int | None:
        name = name.strip()
        if not name or len(name) > 100:
            raise StoreError("a name must have 1 to 100 characters")
        row = self.query("SELECT id FROM people WHERE name = ?", (name,))
        if row:
            return int(row[0]["id"])
        if not create:
            return None
        with self.tx() as db:
            return int(db.execute("INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid)

    def add_embeddings(self, person_id: int, embedder: str, vectors: list[np.ndarray], sources: list[str]) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany("INSERT INTO embeddings(person_id, embedder, vector, source, created) VALUES (?,?,?,?,?)",
                           [(person_id, embedder, np.asarray(v, np.float32).tobytes(), s, now)
                            for v, s in zip(vectors, sources)])

    def gallery(self, embedder: str) -> tuple[list[int], list[str], np.ndarray]:
        """(person ids, names, vectors) of every stored embedding made by ``embedder``."""
        rows = self.query("SELECT e.person_id, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id "
                          "WHERE e.embedder = ? ORDER BY e.id", (embedder,))
        if not rows:
            return [], [], np.zeros((0, 0), np.float32)
        return ([int(r[0]) for r in rows], [r[1] for r in rows],
                np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows]))

    def people(self) -> list[dict[str, Any]]:
        """Each person with the shots enrolled (side-lit copies of a shot are vectors, not shots)."""
        rows = self.query("SELECT p.id, p.name, COUNT(e.id) - COUNT(CASE WHEN e.source LIKE ? THEN 1 END) AS shots, "
                          "COUNT(e.id) AS vectors, GROUP_CONCAT(DISTINCT e.embedder) AS embedders "
                          "FROM people p LEFT JOIN embeddings e ON e.person_id = p.id GROUP BY p.id ORDER BY p.name",
                          (f"%{RELIT_TAG}%",))
        return [dict(r) for r in rows]

    # -------------------------------------------------------------- events
    def add_event(self, ev: dict[str, Any]) -> int:
        with self.tx() as db:
            return int(db.execute(
                "INSERT INTO events(ts, person_id, name, kind, distance, embedder, snapshot) VALUES (?,?,?,?,?,?,?)",
                (ev["ts"], ev.get("person_id"), ev["name"], ev["kind"], ev.get("distance"), ev["embedder"],
                 ev.get("snapshot"))).lastrowid)

    def unpublished(self, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM events WHERE published = 0 ORDER BY id LIMIT ?", (limit,))]

    def mark_published(self, event_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE events SET published = 1 WHERE id = ?", (event_id,))

    def last_kind(self, person_id: int, since: float) -> str | None:
        row = self.query("SELECT kind FROM events WHERE person_id = ? AND ts >= ? AND kind IN ('in', 'out') "
                         "ORDER BY id DESC LIMIT 1", (person_id, since))
        return row[0]["kind"] if row else None

    def summary(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per person in [start, end): first in, last out (or last seen), count of check events."""
        rows = self.query(
            "SELECT person_id AS id, name, MIN(CASE WHEN kind = 'in' THEN ts END) AS first_in, "
            "MAX(CASE WHEN kind = 'out' THEN ts END) AS last_out, MAX(ts) AS last_seen, COUNT(*) AS count "
            "FROM events WHERE ts >= ? AND ts < ? AND person_id IS NOT NULL GROUP BY person_id ORDER BY name",
            (start, end))
        return [dict(r) for r in rows]

    def export_csv(self, out: Path, start: float, end: float) -> int:
        rows = self.summary(start, end)

        def iso(t: float | None) -> str:
            return datetime.fromtimestamp(t).isoformat(timespec="seconds") if t else ""

        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["name", "id", "first_in", "last_out", "count"])
            for r in rows:
                w.writerow([r["name"], r["id"], iso(r["first_in"]), iso(r["last_out"]), r["count"]])
        return len(rows)

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _error(path: Path, exc: sqlite3.Error) -> StoreError:
    msg = str(exc)
    return StoreError(_explain(path, exc), locked="locked" in msg or "busy" in msg)


def _explain(path: Path, exc: sqlite3.Error) -> str:
    msg = str(exc)
    if "readonly" in msg or "read-only" in msg:
        return f"the attendance database {path} is read-only: fix its permissions or pass --db to a writable file"
    if "locked" in msg or "busy" in msg:
        return f"the attendance database {path} is locked by another program (another 'edge attend run'?)"
    if "unable to open" in msg:
        return f"cannot open the attendance database {path} (does the folder exist and is it writable?)"
    return f"attendance database {path}: {msg}"
