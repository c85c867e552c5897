"""`edge trail hub`: MQTT (paho, QoS1, persistent session) and the paper's HTTP POST in; validated, classified
readings into SQLite; an alert topic on Berbahaya; a token-protected API and the live dashboard out.

Topics: trail/<device>/reading (in, QoS1), trail/<device>/status (retained birth / last will: online|offline),
trail/<device>/alert (out, QoS1, on Berbahaya).
"""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, MissingDependency
from edge.trail.store import FEATURES, IDEAL, RANGES, Classifier, Invalid, Store, validate
from edge.web import api_app, fail

log = logging.getLogger("edge.trail.hub")
PAGE = Path(__file__).with_name("dashboard.html")


class Ingest:
    """Validate -> classify -> store (once) -> alert. Shared by the MQTT and HTTP paths; works on batches so one
    SQLite transaction and one tree call serve many readings."""

    def __init__(self, store: Store, classifier: Classifier, alert: Any = None) -> None:
        self.store, self.classify, self.alert = store, classifier, alert
        self.counts = {"stored": 0, "duplicate": 0, "rejected": 0, "alerts": 0}
        self._lock = threading.Lock()

    def __call__(self, payload: bytes | str | dict, via: str) -> tuple[str, dict[str, Any] | str]:
        return self.many([payload], via)[0]

    def many(self, payloads: list[bytes | str | dict], via: str) -> list[tuple[str, dict[str, Any] | str]]:
        """Store a batch in one transaction; per payload ("stored"|"duplicate", reading) or ("rejected", why)."""
        if not payloads:
            return []
        valid: list[tuple[int, dict[str, Any]]] = []
        rejects: list[tuple[bytes | str, str]] = []
        out: list[tuple[str, dict[str, Any] | str]] = [("rejected", "")] * len(payloads)
        for i, payload in enumerate(payloads):
            try:
                valid.append((i, validate(payload)))
            except Invalid as exc:
                rejects.append((payload if not isinstance(payload, dict) else repr(payload), str(exc)))
                out[i] = ("rejected", str(exc))
                log.warning("rejected reading via %s: %s", via, exc)
        labels = self.classify.many([r for _, r in valid])
        new = self.store.add_many([(r, lab) for (_, r), lab in zip(valid, labels)], via, rejects)
        alerts = 0
        for (i, r), label, is_new in zip(valid, labels, new):
            out[i] = ("stored" if is_new else "duplicate"), {**r, "label": label}
            if is_new and label == "Berbahaya" and self.alert is not None:
                self.alert(r, label)
                alerts += 1
        with self._lock:
            self.counts["stored"] += sum(new)
            self.counts["duplicate"] += len(new) - sum(new)
            self.counts["rejected"] += len(rejects)
            self.counts["alerts"] += alerts
        return out


class MqttIngest:
    """paho-mqtt subscriber with manual acknowledgement. The network thread only queues messages; a writer thread
    stores whatever has queued in one transaction and only then sends their PUBACKs, in arrival order. So a
    reading is acknowledged only once committed (with clean_session=False the broker re-delivers anything not
    acknowledged), and batches grow by themselves under load while a lone reading is stored at once."""

    def __init__(self, ingest: Ingest, host: str, port: int, prefix: str = "trail", client_id: str = "edge-hub",
                 username: str | None = None, password: str | None = None, max_batch: int = 1000) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MissingDependency("paho-mqtt", "trail", "the trail hub's MQTT input") from None
        self.ingest, self.prefix, self.max_batch = ingest, prefix, max_batch
        self.connected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                        manual_ack=True)
        if username:
            c.username_pw_set(username, password)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.2, 5)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        self.client = c
        self.host, self.port = host, port
        self._queue: list[Any] = []
        self._cv = threading.Condition()
        self._running = False
        self._writer: threading.Thread | None = None
        ingest.alert = self._alert

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.error("broker refused the hub: %s", rc)
            return
        client.subscribe([(f"{self.prefix}/+/reading", 1), (f"{self.prefix}/+/status", 1)])
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cv:
            self._queue.append(msg)
            self._cv.notify()

    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and self._running:
                    self._cv.wait(0.5)
                if not self._queue and not self._running:
                    return
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            self._store(batch)

    def _store(self, batch: list[Any]) -> None:
        readings = []
        for msg in batch:
            parts = msg.topic.split("/")
            if len(parts) == 3 and parts[2] == "status":
                status = msg.payload.decode("utf-8", "replace")[:16]
                if status in ("online", "offline"):
                    self.ingest.store.set_status(parts[1], status)
            else:
                readings.append(msg.payload)
        try:
            self.ingest.many(readings, "mqtt")
        except sqlite3.Error as exc:  # locked too long, disk full: keep them unacknowledged and try again
            log.error("could not store %d readings (%s); retrying in 1 s", len(readings), exc)
            time.sleep(1.0)
            with self._cv:
                self._queue[:0] = batch
            return
        except Exception:  # a bug must not stop the hub: store one by one, log and acknowledge what fails
            log.exception("batch of %d readings failed; storing them one by one", len(readings))
            for payload in readings:
                try:
                    self.ingest.many([payload], "mqtt")
                except Exception:
                    log.exception("ingest failed for %r", payload[:200])
        for msg in batch:
            self.client.ack(msg.mid, msg.qos)

    def _alert(self, r: dict[str, Any], label: str) -> None:
        import json

        body = json.dumps({"device": r["device"], "seq": r["seq"], "ts": r["ts"], "label": label,
                           **{f: r[f] for f in FEATURES}})
        self.client.publish(f"{self.prefix}/{r['device']}/alert", body, qos=1)

    def start(self) -> None:
        self._running = True
        self._writer = threading.Thread(target=self._write_loop, name="edge-hub-writer", daemon=True)
        self._writer.start()
        try:
            self.client.connect_async(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise EdgeError(f"cannot reach the MQTT broker {self.host}:{self.port}: {exc}") from None
        self.client.loop_start()

    def stop(self) -> None:
        with self._cv:
            self._running = False
            self._cv.notify()
        if self._writer:
            self._writer.join(30)
        self.client.loop_stop()
        self.client.disconnect()


def create_app(store: Store, ingest: Ingest, token: str) -> Any:
    from flask import Response, jsonify, request

    # ?token= too: the dashboard's CSV link is a plain download
    app = api_app("edge.trail", token, 16 * 1024, "trail", "the trail hub's web API", query_token=True)

    @app.get("/")
    def page() -> Any:
        return Response(PAGE.read_text(encoding="utf-8"), mimetype="text/html")

    @app.get("/health")
    def health() -> Any:
        return jsonify({"ok": True, **ingest.counts})

    @app.post("/api/readings")  # the paper's HTTP POST, one JSON reading per request
    def post_reading() -> Any:
        status, out = ingest(request.get_data(cache=False), "http")
        if status == "rejected":
            return fail(400, str(out))
        return jsonify({"status": status, "reading": out}), (201 if status == "stored" else 200)

    @app.get("/api/stations")
    def stations() -> Any:
        latest = store.query(
            "SELECT r.* FROM readings r JOIN (SELECT device, MAX(seq) AS seq FROM readings GROUP BY device) m "
            "ON r.device = m.device AND r.seq = m.seq")
        status = {s["device"]: s for s in store.query("SELECT * FROM stations")}
        devices = sorted({r["device"] for r in latest} | set(status))
        by_dev = {r["device"]: r for r in latest}
        return jsonify({"ideal": IDEAL, "ranges": RANGES, "counts": ingest.counts, "stations": [
            {"device": d, "status": status.get(d, {}).get("status", "unknown"), "latest": by_dev.get(d)}
            for d in devices]})

    def _page_args() -> tuple[str | None, int, int]:
        try:
            page_no = max(0, int(request.args.get("page", 0)))
            size = min(500, max(1, int(request.args.get("size", 50))))
        except ValueError:
            raise EdgeError("page and size must be integers") from None
        return request.args.get("device"), page_no, size

    @app.get("/api/readings")
    def readings() -> Any:
        try:
            dev, page_no, size = _page_args()
        except EdgeError as exc:
            return fail(400, str(exc))
        where, args = ("WHERE device = ?", (dev,)) if dev else ("", ())
        rows = store.query(f"SELECT * FROM readings {where} ORDER BY ts DESC, seq DESC LIMIT ? OFFSET ?",
                           (*args, size, page_no * size))
        total = store.query(f"SELECT COUNT(*) AS n FROM readings {where}", args)[0]["n"]
        return jsonify({"page": page_no, "size": size, "total": total, "readings": rows})

    @app.get("/api/export.csv")
    def export_csv() -> Any:
        dev = request.args.get("device")
        where, args = ("WHERE device = ?", (dev,)) if dev else ("", ())
        rows = store.query(f"SELECT * FROM readings {where} ORDER BY device, seq", args)
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = ["device", "seq", "ts", *FEATURES, "label", "device_label", "via"]
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
        return Response(buf.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=trail.csv"})

    return app


def run_hub(db: Path, token: str, host: str, port: int, broker: str | None, broker_port: int,
            username: str | None = None, password: str | None = None) -> None:
    from werkzeug.serving import make_server

    store = Store(db)
    ingest = Ingest(store, Classifier())
    mq = None
    if broker:
        mq = MqttIngest(ingest, broker, broker_port, username=username, password=password)
        mq.start()
    srv = make_server(host, port, create_app(store, ingest, token), threaded=True)
    print(f"edge trail hub: http://{host}:{srv.server_port}/?token=... (db {db}, broker {broker}:{broker_port})",
          flush=True)
    try:
        srv.serve_forever()
    finally:
        if mq:
            mq.stop()
