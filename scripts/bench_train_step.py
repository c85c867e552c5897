"""Training step time on this CPU: plain (NCHW-contiguous) vs channels-last tensors, as `edge train` runs them.

    python scripts/bench_train_step.py [--out docs/bench] [--steps 10] [--threads 1,2]

One step = forward + cross-entropy + backward + AdamW on a batch of random images, for the recipes' networks at their
input sizes. Each (network, size, threads, layout) is timed in the same process, layouts interleaved, median of the
steps after two warm-up steps. Writes ``train-step-<stem>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from edge.bench.fingerprint import fingerprint
from edge.bench.report import markdown_table
from edge.families import get_family
from edge.models.checkpoint import build

# (recipe name, family, builder or None for the family's own, builder kwargs, input size, batch)
CASES = [
    ("fer (MobileNetV2)", "fer", None, {"num_classes": 7}, 96, 128),
    ("fer (MobileNetV2)", "fer", None, {"num_classes": 7}, 112, 128),
    ("tomato-mobilenet", "tomato", "edge.models.classifiers:mobilenet_v2_classifier", {"num_classes": 3}, 96, 32),
    ("asl-mobilenet (STN)", "asl", "edge.models.stn:stn_mobilenet_v2", {"num_classes": 26}, 96, 32),
]


def step_times(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 2):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times[2:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/bench")
    ap.add_argument("--stem", default="x86-2core")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    rows, results = [], []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, family, builder, kwargs, size, batch in CASES:
            fam = get_family(family)
            kw = {**kwargs, "pretrained": False}  # as train_classifier builds them (the weights do not matter here)
            if builder and fam.channels == 1:
                kw.setdefault("in_channels", 1)
            torch.manual_seed(0)
            x = torch.randn(batch, fam.channels, size, size)
            y = torch.randint(0, kwargs["num_classes"], (batch,))
            ms = {}
            for layout in ("plain", "channels-last", "plain", "channels-last"):  # interleaved: drift hits both
                torch.manual_seed(0)
                model = build(fam, builder=builder, **kw)
                xb = x
                if layout == "channels-last":
                    model = model.to(memory_format=torch.channels_last)
                    xb = x.contiguous(memory_format=torch.channels_last)
                ms.setdefault(layout, []).extend(t * 1000 for t in step_times(model.train(), xb, y, a.steps))
            med = {k: statistics.median(v) for k, v in ms.items()}
            ratio = med["plain"] / med["channels-last"]
            results.append({"recipe": name, "size": size, "batch": batch, "threads": threads,
                            "plain_ms": round(med["plain"], 1), "channels_last_ms": round(med["channels-last"], 1),
                            "speedup": round(ratio, 2), "steps": 2 * a.steps})
            rows.append([name, str(size), str(batch), str(threads), f"{med['plain']:.0f}",
                         f"{med['channels-last']:.0f}", f"{ratio:.2f}x"])
            print(" | ".join(rows[-1]), flush=True)
    fp = fingerprint()
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"train-step-{a.stem}.json").write_text(json.dumps(
        {"created": created, "device": fp, "torch": torch.__version__, "results": results}, indent=2) + "\n")
    md = ["# Training step time: plain vs channels-last", "",
          f"Device: {fp.get('cpu', '')} ({fp.get('cores', '?')} cores), torch {torch.__version__}. Created {created}.",
          "", f"Median of {2 * a.steps} steps (forward, loss, backward, AdamW) per layout, layouts interleaved in one "
          "process; random images; `edge train` uses channels-last.", "",
          markdown_table(["Recipe", "Size px", "Batch", "Threads", "Plain ms", "Channels-last ms", "Speed-up"], rows)]
    (out / f"train-step-{a.stem}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
