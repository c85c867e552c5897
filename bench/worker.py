"""Measure one artifact at one thread count in a fresh process; print one JSON line.

Run as ``python -m edge.bench.worker ARTIFACT --threads T --runs N``.  Each runtime gets its own
process, so one library's thread pool or allocator never colours another's figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def peak_rss_mb() -> float:
    """Peak resident memory of this process.

    VmHWM first: ru_maxrss survives exec, so a worker started by a big parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 2**20, 1)


def measure(artifact: str, threads: int, runs: int, warmup: int, seconds: float, evaluate: bool) -> dict:
    from edge import runtime

    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    model = runtime.load(artifact, threads=threads)
    load_s = time.perf_counter() - t0
    shape = [1 if d is None else int(d) for d in model.manifest.input.shape]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(model.manifest.input.dtype)
    if model.manifest.input.layout == "NF":
        x = np.array([[27.5, 80.0, 12.0]], dtype=np.float32)
    for _ in range(warmup):
        model.predict(x)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < runs and (time.perf_counter() < deadline or len(times) < 5):
        s = time.perf_counter_ns()
        model.predict(x)
        times.append((time.perf_counter_ns() - s) / 1e6)
    t = np.array(times)
    out = {
        "backend": model.backend,
        "threads": threads,
        "load_ms": round(load_s * 1000, 2),
        "runs": len(t),
        "p50_ms": round(float(np.percentile(t, 50)), 4),
        "p90_ms": round(float(np.percentile(t, 90)), 4),
        "p99_ms": round(float(np.percentile(t, 99)), 4),
        "mean_ms": round(float(t.mean()), 4),
        "fps": round(1000.0 / float(np.percentile(t, 50)), 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_load_mb": rss_before,
    }
    if evaluate:
        from edge.bench.accuracy import evaluate as eval_fn

        out["accuracy"] = eval_fn(model)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("artifact")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0, help="stop early after this long")
    ap.add_argument("--eval", action="store_true", help="also measure accuracy on the test split")
    a = ap.parse_args(argv)
    try:
        res = measure(a.artifact, a.threads, a.runs, a.warmup, a.seconds, a.eval)
    except Exception as exc:  # reported as a failed row by the parent
        from edge.errors import EdgeError

        first = str(exc).splitlines()[0] if str(exc) else ""
        print(json.dumps({"error": first if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {first}"}))
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
