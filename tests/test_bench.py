"""The benchmark: JSON + Markdown + PNG, failed formats shown as failed, compare as ratios."""

from __future__ import annotations

import json
import shutil

from conftest import run_edge
from edge import runtime
from edge.manifest import read_manifest


def test_bench_writes_reports_and_keeps_going_past_a_broken_artifact(fer_artifacts, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(fer_artifacts, art)
    (art / "fer" / "fer.tflite").write_bytes(b"broken")  # manifest still says it is there
    out = tmp_path / "res"
    proc = run_edge("bench", "--artifacts", str(art), "--families", "fer",
                    "--formats", "torch,onnx,onnx-int8,tflite,ncnn",
                    "--threads", "1", "--runs", "5", "--repeats", "2", "--seconds", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "bench.json").read_text())
    status = {r["format"]: r for r in result["rows"]}
    assert status["tflite"]["status"] == "failed" and "cannot load" in status["tflite"]["reason"]
    for fmt in ("torch", "onnx", "onnx-int8", "ncnn"):
        row = status[fmt]
        assert row["status"] == "ok", row
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] * 0.5 and len(row["repeats"]) == 2
        assert row["peak_rss_mb"] > 10 and row["size_mb"] > 0
    # the worker's own peak, not the parent's (ru_maxrss survives exec): a tiny ONNX model needs far less
    assert status["onnx"]["peak_rss_mb"] < 400 < status["torch"]["peak_rss_mb"]
    assert result["device"]["cores"] >= 1 and "onnxruntime" in result["device"]["libraries"]
    md = (out / "bench.md").read_text()
    assert "| fer | onnx | 1 | ok |" in md and "failed: cannot load" in md and "untrained" in md
    assert (out / "bench.png").stat().st_size > 5000
    rec = result["recommendations"][0]
    assert rec["family"] == "fer" and rec["format"] != "torch"
    fastest = min(r["p50_ms"] for r in result["rows"] if r["status"] == "ok" and r["format"] != "torch")
    assert rec["p50_ms"] <= fastest * 1.05  # the pick is within 5 % of the fastest measured in this run
    assert "Format" not in proc.stderr.splitlines()[-1]  # table goes to stdout, progress to stderr
    assert "Deploy" in proc.stdout
    # an 8-bit S8 int8 file measured on an x86 CPU without VNNI: the report says its figures are this CPU's
    risk = runtime.int8_saturation_risk(read_manifest(art / "fer" / "fer.int8.onnx")[1])
    assert bool(status["onnx-int8"]["note"]) == bool(risk) and status["onnx"]["note"] == ""
    assert ("## Notes on this machine" in md) == bool(risk) and ("note: fer onnx-int8: " in proc.stdout) == bool(risk)
    if risk:  # the runtime ran its weights as U8 here (the default), and the report says so
        assert "run here as the same integers stored U8" in md and "--int8-target x86" in md

    b = json.loads(json.dumps(result))
    for r in b["rows"]:
        if r.get("p50_ms"):
            r["p50_ms"] *= 2
    (out / "b.json").write_text(json.dumps(b))
    proc = run_edge("bench", "compare", str(out / "bench.json"), str(out / "b.json"), "--json")
    assert proc.returncode == 0, proc.stderr
    ratios = {r["Format"]: r["B/A"] for r in json.loads(proc.stdout)}
    assert ratios["onnx"] == "2.00" and ratios["tflite"] == ""


def test_bench_with_no_artifacts_says_what_to_do(tmp_path):
    proc = run_edge("bench", "--artifacts", str(tmp_path), "--families", "fer")
    assert proc.returncode == 2 and "run 'edge export' first" in proc.stderr


def test_compare_rejects_non_bench_json(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    proc = run_edge("bench", "compare", str(tmp_path / "x.json"), str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "not a benchmark JSON" in proc.stderr
