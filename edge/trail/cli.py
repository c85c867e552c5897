"""`edge trail ...`: the hub (MQTT + HTTP in, SQLite, alerts, dashboard)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge.errors import EdgeError


def cmd_hub(a: argparse.Namespace) -> int:
    from edge.trail.hub import run_hub

    token = a.token or os.environ.get("EDGE_TRAIL_TOKEN", "")
    if not token:
        raise EdgeError("edge trail hub needs an API token: --token T or EDGE_TRAIL_TOKEN=T")
    run_hub(Path(a.db), token, a.host, a.port, None if a.broker == "none" else a.broker, a.broker_port,
            a.username, os.environ.get("EDGE_MQTT_PASSWORD"))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("trail", help="trail-safety station: the hub with its dashboard")
    ts = t.add_subparsers(dest="trail_cmd", metavar="ACTION")
    p = ts.add_parser("hub", help="MQTT + HTTP ingest -> tree -> SQLite -> alerts; dashboard at http://HOST:PORT/")
    p.add_argument("--db", default="trail.sqlite", help="SQLite file (default trail.sqlite)")
    p.add_argument("--token", help="API/dashboard token (or EDGE_TRAIL_TOKEN)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--broker", default="127.0.0.1", help="MQTT broker host ('none': HTTP only)")
    p.add_argument("--broker-port", type=int, default=1883)
    p.add_argument("--username", help="MQTT user (password from EDGE_MQTT_PASSWORD)")
    p.set_defaults(fn=cmd_hub)
    t.set_defaults(fn=lambda a: (t.print_help(), 2)[1])
