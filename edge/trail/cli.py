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


def cmd_flash(a: argparse.Namespace) -> int:
    from edge.trail.deploy import flash

    cmds = flash(a.port, Path(a.firmware), a.chip, a.baud, erase=not a.no_erase, dry_run=a.dry_run)
    for c in cmds:
        print(("would run: " if a.dry_run else "ran: ") + " ".join(c))
    return 0


def cmd_deploy(a: argparse.Namespace) -> int:
    from edge.trail.deploy import FIRMWARE_DIR, check, deploy, plan, typecheck

    p = plan(Path(a.src) if a.src else FIRMWARE_DIR,
             Path(a.config) if a.config else None, Path(a.tree) if a.tree else None)
    if a.typecheck:
        errors = typecheck(p, Path(a.stubs) if a.stubs else None)
        for e in errors:
            print(e)
        if errors:
            raise EdgeError(f"{len(errors)} type error(s) against the ESP32 MicroPython stubs: nothing copied")
        print(f"type-check against the ESP32 stubs: {len([f for f in p.files if f[1].endswith('.py')])} files, "
              "no errors")
        if not a.port:
            return 0
    if not a.port:
        raise EdgeError("--port is needed to deploy (or --typecheck alone to check the files)")
    if not a.check:
        files = deploy(a.port, p, reset=not a.no_reset, resume=a.resume)
        print(f"copied {len(files)} files to {a.port}: {', '.join(files)}" + ("" if a.no_reset else "; reset"))
    rows = check(a.port, p, resume=a.resume)
    for r in rows:
        print(f"{r['status']:8s} {r['file']:24s} local {r['local']}  board {r['board']}")
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise EdgeError(f"{len(bad)} file(s) on the board differ from the local ones: run 'edge deploy' again")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="erase an ESP32 and write a MicroPython image (esptool)")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--firmware", required=True, help="MicroPython .bin (https://micropython.org/download/ESP32_GENERIC/)")
    p.add_argument("--chip", default="esp32")
    p.add_argument("--baud", type=int, default=460800)
    p.add_argument("--no-erase", action="store_true", help="write without erasing first")
    p.add_argument("--dry-run", action="store_true", help="check the image and print the esptool commands only")
    p.set_defaults(fn=cmd_flash)

    p = sub.add_parser("deploy", help="copy the station firmware, config and tree to the board (mpremote)")
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--typecheck", action="store_true",
                   help="first type-check the files against the ESP32 MicroPython stubs (mypy); alone: only check")
    p.add_argument("--stubs", help="folder with micropython-esp32-stubs (default: <venv>/esp32-stubs)")
    p.add_argument("--config", help="your station's config.json (default firmware/esp32/config.json)")
    p.add_argument("--src", help="firmware folder (default firmware/esp32 in this checkout)")
    p.add_argument("--tree", help="generated MicroPython tree (default the zoo's trail.py)")
    p.add_argument("--check", action="store_true", help="only compare sha256 of the files on the board")
    p.add_argument("--no-reset", action="store_true", help="do not reset the board after copying")
    p.add_argument("--resume", action="store_true", help="attach without a soft reset (the unix port needs it)")
    p.set_defaults(fn=cmd_deploy)

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
