"""Run the benchmark: every artifact x thread count, each in its own process, interleaved and repeated."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from tqdm import tqdm

from edge import runtime
from edge.bench.fingerprint import fingerprint
from edge.errors import EdgeError
from edge.formats import FORMATS
from edge.manifest import read_manifest


@dataclass
class Row:
    family: str
    format: str
    threads: int
    status: str  # ok | failed
    reason: str = ""
    artifact: str = ""
    size_mb: float = 0.0
    trained: bool = False
    load_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    peak_rss_mb: float | None = None
    backend: str = ""
    accuracy: dict[str, Any] | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    repeats: list[float] = field(default_factory=list)
    note: str = ""  # what about this machine bears on the row (e.g. int8 saturation on x86 without VNNI)


def find_artifacts(root: Path, families: list[str], formats: list[str], tag: str = ""
                   ) -> list[tuple[str, str, Path]]:
    """(family, format label, artifact) for each manifest under root/<family>/ matching the filters.

    With ``tag`` the label is ``format@tag`` (e.g. ``onnx-int8@zoo``), so two trees can be measured side by side.
    """
    found = []
    for fam in families:
        for man in sorted((root / fam).glob("*.json")):
            try:
                artifact, m = read_manifest(man)
            except EdgeError:
                continue
            if m.format in formats:
                found.append((fam, f"{m.format}@{tag}" if tag else m.format, artifact))
    order = {f: i for i, f in enumerate(FORMATS)}
    return sorted(found, key=lambda t: (families.index(t[0]), order.get(t[1].split("@")[0], 99), t[1]))


def _shown(path: Path) -> Path:
    """A path as a user would type it here: relative to the working folder when it lies under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def run_worker(artifact: Path, threads: int, runs: int, seconds: float, evaluate: bool, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "edge.bench.worker", str(artifact), "--threads", str(threads),
           "--runs", str(runs), "--seconds", str(seconds)] + (["--eval"] if evaluate else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited {proc.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def run_bench(root: Path, families: list[str], formats: list[str], threads: list[int], runs: int = 50,
              repeats: int = 3, seconds: float = 5.0, timeout: float = 300.0, show_progress: bool = True,
              extra_roots: dict[str, Path] | None = None) -> dict[str, Any]:
    """Measure every (artifact, threads); repeats interleave formats so drift hits all alike.

    ``extra_roots`` ({tag: folder}) adds more artifact trees, e.g. the committed trained zoo.
    """
    items = find_artifacts(root, families, formats)
    for tag, extra in (extra_roots or {}).items():
        items += find_artifacts(extra, families, formats, tag)
    if not items:
        raise EdgeError(f"no exported artifacts under {root} for {families} / {formats}: run 'edge export' first")
    rows: dict[tuple[str, str, int], Row] = {}
    results: dict[tuple[str, str, int], list[dict]] = {}
    jobs = [(fam, fmt, art, t) for fam, fmt, art in items for t in threads]
    for fam, fmt, art, t in jobs:
        _, man = read_manifest(art)
        rows[(fam, fmt, t)] = Row(fam, fmt, t, "ok", artifact=str(art), size_mb=round(man.size_bytes / 1e6, 3),
                                  trained=man.trained, parity=man.parity,
                                  note=runtime.int8_note(man, path=_shown(art)) or "")
    bar = tqdm(total=len(jobs) * repeats, desc="bench", unit="run", disable=not show_progress, file=sys.stderr)
    for rep in range(repeats):
        for fam, fmt, art, t in jobs:
            bar.set_postfix_str(f"{fam}/{fmt} x{t}")
            evaluate = rep == 0 and t == threads[0]
            results.setdefault((fam, fmt, t), []).append(run_worker(art, t, runs, seconds, evaluate, timeout))
            bar.update(1)
    bar.close()
    for key, res in results.items():
        row = rows[key]
        good = [r for r in res if "error" not in r]
        if not good:
            row.status, row.reason = "failed", res[0]["error"]
            continue
        row.repeats = [r["p50_ms"] for r in good]
        best = sorted(good, key=lambda r: r["p50_ms"])[len(good) // 2]  # the median repeat
        row.p50_ms = round(median(row.repeats), 4)
        row.p90_ms, row.p99_ms = best["p90_ms"], best["p99_ms"]
        row.fps = round(1000.0 / row.p50_ms, 2)
        row.load_ms = round(median(r["load_ms"] for r in good), 2)
        row.peak_rss_mb = max(r["peak_rss_mb"] for r in good)
        row.backend = good[0]["backend"]
        row.accuracy = next((r.get("accuracy") for r in good if r.get("accuracy")), None)
    for row in rows.values():  # accuracy belongs to the artifact, measured once at the first thread count
        if row.accuracy is None:
            row.accuracy = next((o.accuracy for o in rows.values() if o.artifact == row.artifact and o.accuracy), None)
    out_rows = [asdict(r) for r in rows.values()]
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": fingerprint(),
        "settings": {"threads": threads, "runs": runs, "repeats": repeats, "batch": 1},
        "rows": out_rows,
        "recommendations": recommend(out_rows),
    }


def _eligible(r: dict, best_acc: float | None, budget: float) -> bool:
    if best_acc is not None and r.get("accuracy"):
        return r["accuracy"]["value"] >= best_acc - budget
    return bool(r.get("parity", {}).get("within_tolerance", False))


def recommend(rows: list[dict], accuracy_budget: float = 0.01) -> list[dict]:
    """Per family and thread count: the fastest artifact within the accuracy budget.

    Budget: top-1 no more than ``accuracy_budget`` below the best measured format of the family;
    where accuracy cannot be measured, the artifact's parity must be within tolerance.
    """
    out = []
    keys = sorted({(r["family"], r["threads"]) for r in rows})
    for fam, t in keys:
        cand = [r for r in rows if r["family"] == fam and r["threads"] == t and r["status"] == "ok"
                and r["format"] != "torch"]
        if not cand:
            continue
        if any(r.get("trained") for r in cand):  # never recommend a random-init artifact over a trained one
            cand = [r for r in cand if r.get("trained")]
        accs = [r["accuracy"]["value"] for r in cand if r.get("accuracy")]
        best_acc = max(accs) if accs else None

        ok = [r for r in cand if _eligible(r, best_acc, accuracy_budget)] or cand
        pick = min(ok, key=lambda r: r["p50_ms"])
        fastest = min(cand, key=lambda r: r["p50_ms"])  # among artifacts of the same training state
        torch_row = next((r for r in rows if r["family"] == fam and r["threads"] == t and r["format"] == "torch"
                          and r["status"] == "ok"), None)
        if "@" in pick["format"]:  # another tree (the zoo) may hold another architecture or input size
            torch_row = None
        out.append({
            "family": fam, "threads": t, "format": pick["format"], "artifact": pick["artifact"],
            "p50_ms": pick["p50_ms"], "fastest_format": fastest["format"],
            "vs_fastest": round(pick["p50_ms"] / fastest["p50_ms"], 3),
            "speedup_vs_torch": round(torch_row["p50_ms"] / pick["p50_ms"], 2) if torch_row else None,
            "basis": "accuracy" if best_acc is not None else "parity",
        })
    return out
