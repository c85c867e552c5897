"""`edge voice ...`: parse, listen, add, serve, report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edge.errors import EdgeError

DEFAULT_LEDGER = Path("ledger.sqlite")


def _ledger(a: argparse.Namespace):  # noqa: ANN202
    from edge.voice.ledger import Ledger

    return Ledger(a.ledger)


def cmd_parse(a: argparse.Namespace) -> int:
    from edge.voice.parse import parse

    texts = a.text or [line for line in sys.stdin.read().splitlines() if line.strip()]
    for t in texts:
        print(json.dumps(parse(t, a.vocab), ensure_ascii=False))
    return 0


def cmd_listen(a: argparse.Namespace) -> int:
    from edge.voice.parse import parse
    from edge.voice.speech import RATE, recognizer, record, resample, voiced

    rec = recognizer(a.engine, language=a.language)
    if a.audio:
        from edge.voice.speech import read_wav

        x, rate = read_wav(a.audio)
        x = resample(x, rate)
    else:
        print(f"listening for {a.seconds:g} s ...", file=sys.stderr, flush=True)
        x = record(a.seconds, a.device)
    text = rec.transcribe(voiced(x, RATE), RATE)
    parsed = parse(text, a.vocab)
    if a.save:
        row, _ = _ledger(a).add(parsed, source="listen")
        parsed["entry_id"] = row["entry_id"]
    print(json.dumps(parsed, ensure_ascii=False))
    return 0


def cmd_add(a: argparse.Namespace) -> int:
    from edge.voice.parse import parse

    row, created = _ledger(a).add(parse(a.text, a.vocab), entry_id=a.id, source="cli")
    print(json.dumps({"entry": row, "duplicate": not created}, ensure_ascii=False))
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from edge.voice.server import serve

    token = a.token or os.environ.get("EDGE_VOICE_TOKEN", "")
    if not token:
        raise EdgeError("edge voice serve needs a token: --token T or EDGE_VOICE_TOKEN=T")
    serve(Path(a.ledger), token, a.host, a.port, None if a.engine == "none" else a.engine)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from edge.voice.ledger import report_csv, totals

    rows = _ledger(a).entries(a.month)
    if a.csv:
        text = report_csv(rows)
        if a.out:
            Path(a.out).write_text(text, encoding="utf-8")
            print(f"wrote {a.out} ({len(rows)} entries)", file=sys.stderr)
        else:
            sys.stdout.write(text)
    else:
        print(json.dumps({"entries": len(rows), **totals(rows)}))
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from edge.bench.voice import run

    r = run(Path(a.out), n_generated=a.utterances, speech=not a.no_speech)
    print((Path(a.out) / "voice.md").read_text(encoding="utf-8"))
    return 0 if r["parse"] else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("voice", help="voice ledger: parse, listen, add, serve, report")
    vs = v.add_subparsers(dest="voice_cmd", metavar="ACTION")

    def common(p: argparse.ArgumentParser, ledger: bool = True) -> None:
        p.add_argument("--vocab", help="extra vocabulary JSON merged over the bundled one")
        if ledger:
            p.add_argument("--ledger", default=str(DEFAULT_LEDGER), help="SQLite ledger (default ledger.sqlite)")

    p = vs.add_parser("parse", help="sentence(s) -> JSON {type, description, amount, currency, confidence}")
    p.add_argument("text", nargs="*", help="sentences (default: one per line on stdin)")
    common(p, ledger=False)
    p.set_defaults(fn=cmd_parse)

    p = vs.add_parser("listen", help="microphone (or --audio FILE.wav) -> speech-to-text -> parsed entry")
    p.add_argument("--audio", help="a WAV recording instead of the microphone (any rate; resampled to 16 kHz)")
    p.add_argument("--seconds", type=float, default=6.0, help="longest utterance (default 6 s)")
    p.add_argument("--device", help="sounddevice input device (index or name)")
    p.add_argument("--engine", default="sphinx", choices=["sphinx", "google"],
                   help="sphinx: offline, grammar from the vocabulary (default); google: online")
    p.add_argument("--language", default="id", choices=["id", "en"])
    p.add_argument("--save", action="store_true", help="also store the entry in the ledger")
    common(p)
    p.set_defaults(fn=cmd_listen)

    p = vs.add_parser("add", help="parse a sentence and store it in the ledger")
    p.add_argument("text")
    p.add_argument("--id", help="entry id (replaying the same id stores nothing new)")
    common(p)
    p.set_defaults(fn=cmd_add)

    p = vs.add_parser("serve", help="HTTP endpoint for the watch (token-protected, idempotent by entry id)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="API token (or EDGE_VOICE_TOKEN)")
    p.add_argument("--engine", default="sphinx", choices=["sphinx", "google", "none"],
                   help="recogniser for audio uploads (none: text only)")
    common(p)
    p.set_defaults(fn=cmd_serve)

    p = vs.add_parser("report", help="totals, or --csv: date, type, description, amount + totals per type")
    p.add_argument("--csv", action="store_true")
    p.add_argument("--month", help="YYYY-MM")
    p.add_argument("--out", help="CSV file (default stdout)")
    common(p)
    p.set_defaults(fn=cmd_report)

    p = vs.add_parser("bench", help="parse time vs length (automaton vs Boyer-Moore) and the offline speech path")
    p.add_argument("--utterances", type=int, default=100, help="generated utterances for the speech path")
    p.add_argument("--no-speech", action="store_true", help="parse timing only")
    p.add_argument("--out", default="bench_results", help="folder for voice.json / voice.md")
    p.set_defaults(fn=cmd_bench)
    v.set_defaults(fn=lambda a: (v.print_help(), 2)[1])
