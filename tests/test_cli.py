"""The CLI: help everywhere, one-line errors with non-zero exits, export/verify/info round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_edge

ZOO = Path(__file__).resolve().parents[1] / "models" / "zoo"


@pytest.mark.parametrize("cmd", [[], ["export"], ["verify"], ["bench"], ["train"], ["pipeline"], ["info"],
                                 ["families"], ["formats"], ["bench", "compare"], ["publish"]])
def test_help_on_every_command(cmd):
    proc = run_edge(*cmd, "--help")
    assert proc.returncode == 0 and "usage: edge" in proc.stdout


@pytest.mark.parametrize("args,pattern", [
    (["export", "dragon"], "unknown family 'dragon'; choose from: face, asl, fer, tomato, trail"),
    (["export", "fer", "--formats", "onnx,coreml"], "unknown format 'coreml'; choose from: torch, onnx"),
    (["bench", "--threads", "x"], "--threads takes a comma list"),
    (["verify", "nothing.onnx"], "artifact not found"),
    (["train", "fer", "--data", "/nonexistent/folder"], "data folder not found: /nonexistent/folder"),
    (["export", "models/zoo/fer/fer.int8.tflite"], "is an exported tflite-int8 file: 'edge export' starts from a "
                                                   "family or a checkpoint"),
    (["export", "models/zoo/fer/fer.int8.onnx"], "re-stores an ONNX int8 file for another CPU with --int8-target"),
])
def test_bad_arguments_give_one_clear_line(args, pattern):
    proc = run_edge(*args)
    assert proc.returncode == 2, proc.stderr
    assert pattern in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_wrong_flags_and_paths_are_refused_before_torch_is_imported(tmp_path):
    """Refusals answer at once: importing torch alone takes seconds on a small board."""
    import subprocess
    import sys

    bad = [["export", "dragon"], ["export", str(tmp_path / "missing.pt")], ["verify", "nothing.onnx"],
           ["train", "fer", "--data", "/nonexistent/folder"], ["train", "fer", "--backgrounds", "0.5"],
           ["train", "asl", "--backgrounds", "1.5"], ["train", "fer", "--distill", "0.5"],
           ["train", "fer", "--clahe", "50"], ["train", "face", "--teacher", "dlib"],
           ["train", "face", "--distill-images", "100"], ["train", "face", "--grid-cell", "adam:0.001"],
           ["ensemble", "models", str(tmp_path / "missing"), "--out", str(tmp_path / "x")],
           ["export", str(ZOO / "fer" / "fer.int8.tflite")], ["export", str(ZOO / "fer" / "fer.int8.onnx")]]
    code = ("import sys, json\nfrom edge.cli import main\n"
            f"rcs = [main(a) for a in {bad!r}]\n"
            "print(json.dumps([rcs, sorted(m for m in ('torch', 'torchvision') if m in sys.modules)]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    rcs, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rcs == [2] * len(bad) and imported == [], (rcs, imported, proc.stderr)
    assert proc.stderr.count("edge: error: ") == len(bad) and "Traceback" not in proc.stderr


def test_corrupt_and_missing_checkpoints(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00garbage")
    proc = run_edge("export", str(bad))
    assert proc.returncode == 2 and "corrupt or not an edge checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_edge("export", str(tmp_path / "missing.pt"))
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr


def test_trained_checkpoint_roundtrip_via_cli(tmp_path):
    """train -> export the checkpoint -> verify -> info, all through the real CLI."""
    proc = run_edge("train", "trail", "--out", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_valid"] > 2000
    proc = run_edge("export", str(tmp_path / "run" / "best.pkl"), "--formats", "c,micropython",
                    "--out", str(tmp_path / "art"), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["format"]: r["status"] for r in rows} == {"c": "ok", "micropython": "ok"}
    proc = run_edge("verify", str(tmp_path / "art" / "trail" / "trail.c"), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["max_abs_diff"] == 0
    proc = run_edge("info", str(tmp_path / "art" / "trail" / "trail.py"))
    assert json.loads(proc.stdout)["format"] == "micropython"


def test_the_main_job_runs_end_to_end_on_the_trail_tree(tmp_path):
    """`edge pipeline` (what scripts/main.sh runs): train-if-missing, export, verify, benchmark, in one command."""
    proc = run_edge("pipeline", "--families", "trail", "--formats", "c,micropython", "--int8-target", "x86",
                    "--threads", "1", "--repeats", "1", "--runs", "3", "--seconds", "0.5", "--artifacts",
                    str(tmp_path / "art"), "--out", str(tmp_path / "bench"), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"]
    assert {(r["format"], r["status"]) for r in rows} == {
        ("c", "ok"), ("micropython", "ok"), ("c@zoo", "ok"), ("micropython@zoo", "ok")}
    assert all(r["parity"]["max_abs_diff"] == 0.0 for r in rows if r["format"] in ("c", "micropython"))
    assert (tmp_path / "runs" / "trail" / "best.pkl").exists() and (tmp_path / "bench" / "bench.md").exists()
