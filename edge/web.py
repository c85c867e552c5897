"""The small Flask JSON API shell shared by `edge voice serve` and `edge trail hub`: bearer token on /api/*,
a body-size limit, and JSON errors."""

from __future__ import annotations

import hmac
from typing import Any

from edge.errors import EdgeError, MissingDependency


def api_app(name: str, token: str | None, max_body: int, extra: str, what: str, query_token: bool = False,
            protect: str = "/api/") -> Any:
    """A Flask app whose ``protect``-prefixed routes need ``Authorization: Bearer <token>`` (or ``?token=`` if
    query_token).  ``token=None`` means an open app (a demo on the local network); an empty token is an error."""
    try:
        from flask import Flask, request
    except ImportError:
        raise MissingDependency("flask", extra, what) from None
    if token is not None and not token:
        raise EdgeError(f"{what} needs an API token (--token or the environment variable)")
    app = Flask(name)
    app.config["MAX_CONTENT_LENGTH"] = max_body

    @app.before_request
    def _auth() -> Any:
        if token is None or not request.path.startswith(protect):
            return None
        got = request.headers.get("Authorization", "")
        if not got and query_token:
            got = f"Bearer {request.args.get('token', '')}"
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            return fail(401, "missing or wrong token (Authorization: Bearer <token>)")
        return None

    @app.errorhandler(413)
    def _too_big(_e: Any) -> Any:
        return fail(413, f"upload larger than {max_body} bytes")

    return app


def fail(status: int, msg: str) -> Any:
    """A JSON error response: {"error": msg} with the status."""
    from flask import jsonify

    return jsonify({"error": msg}), status
