"""`edge voice serve`: the HTTP endpoint the watch posts to (Flask).

POST /api/entries   JSON {"id": "<client uuid>", "text": "...", "created_at": "...?"}
                    or multipart with an 'audio' WAV file and an 'id' field
GET  /api/entries?month=YYYY-MM      GET /api/report.csv?month=YYYY-MM      GET /health
Every /api route needs ``Authorization: Bearer <token>``. A replayed id returns the stored entry (200,
"duplicate": true) and stores nothing new.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.voice.ledger import Ledger, report_csv
from edge.voice.parse import parse
from edge.web import api_app, fail

MAX_BODY = 2 * 1024 * 1024  # 2 MB: 60 s of 16 kHz 16-bit audio fits
MAX_TEXT = 1000
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def create_app(ledger: Ledger, token: str, recognizer: Any = None, max_body: int = MAX_BODY,
               vocab: str | None = None) -> Any:
    from flask import Response, jsonify, request

    app = api_app("edge.voice", token, max_body, "voice", "edge voice serve")

    @app.get("/health")
    def health() -> Any:
        return jsonify({"ok": True})

    def _store(entry_id: str | None, text: str, created_at: str | None, source: str) -> Any:
        if not entry_id or not ID_RE.match(entry_id):
            return fail(400, "'id' must be 1-64 characters of letters, digits, _ . : -")
        if created_at is not None and not isinstance(created_at, str):
            return fail(400, "'created_at' must be an ISO-8601 string")
        parsed = parse(text, vocab)
        row, created = ledger.add(parsed, entry_id=entry_id, created_at=created_at, source=source)
        body = {"entry": row, "parsed": parsed, "duplicate": not created}
        return jsonify(body), (201 if created else 200)

    @app.post("/api/entries")
    def add_entry() -> Any:
        if request.files.get("audio") is not None:
            if recognizer is None:
                return fail(400, "this server has no speech recogniser; post the transcript as text")
            from edge.voice.speech import NoSpeech, transcribe_wav

            data = request.files["audio"].read()
            try:
                text = transcribe_wav(data, recognizer)
            except NoSpeech as exc:
                return fail(422, str(exc))
            except EdgeError as exc:
                return fail(400, str(exc))
            return _store(request.form.get("id"), text, request.form.get("created_at"), "audio")
        raw = request.get_data(cache=False)
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return fail(400, "body is not UTF-8")
        except ValueError:
            return fail(400, "body is not JSON")
        if not isinstance(body, dict):
            return fail(400, "body must be a JSON object")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return fail(400, "'text' must be a non-empty string")
        if len(text) > MAX_TEXT:
            return fail(400, f"'text' longer than {MAX_TEXT} characters")
        return _store(body.get("id"), text, body.get("created_at"), body.get("source") or "watch")

    @app.get("/api/entries")
    def list_entries() -> Any:
        try:
            return jsonify(ledger.entries(request.args.get("month")))
        except EdgeError as exc:
            return fail(400, str(exc))

    @app.get("/api/report.csv")
    def report() -> Any:
        try:
            rows = ledger.entries(request.args.get("month"))
        except EdgeError as exc:
            return fail(400, str(exc))
        return Response(report_csv(rows), mimetype="text/csv")

    return app


def serve(ledger_path: Path, token: str, host: str, port: int, engine: str | None) -> None:
    from werkzeug.serving import make_server

    rec = None
    if engine:
        from edge.voice.speech import recognizer

        rec = recognizer(engine)
    app = create_app(Ledger(ledger_path), token, rec)
    srv = make_server(host, port, app, threaded=True)
    print(f"edge voice serve: http://{host}:{srv.server_port} (ledger {ledger_path})", flush=True)
    srv.serve_forever()
