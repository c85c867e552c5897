"""Write a benchmark as JSON + Markdown + PNG; compare two benchmark files as ratios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

COLUMNS = ["Family", "Format", "Threads", "Status", "Size MB", "Metric", "Load ms", "p50 ms", "p90 ms", "p99 ms",
           "FPS", "RSS MB", "x torch"]


def _metric(r: dict) -> str:
    if r.get("accuracy"):
        a = r["accuracy"]
        return f"{a['metric']} {a['value']:.4f}"
    if not r.get("trained"):
        return "untrained"
    if r.get("parity", {}).get("max_abs_diff") == 0:
        return "bit-exact"
    return ""


def _fmt(v: Any, nd: int = 2) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def table_rows(result: dict) -> list[list[str]]:
    torch_p50 = {(r["family"], r["threads"]): r["p50_ms"] for r in result["rows"]
                 if r["format"] == "torch" and r["status"] == "ok"}
    out = []
    for r in result["rows"]:
        tp = torch_p50.get((r["family"], r["threads"]))
        # only against the torch reference of the same export (zoo rows may be another architecture/size)
        speed = f"{tp / r['p50_ms']:.2f}" if tp and r.get("p50_ms") and "@" not in r["format"] else ""
        status = r["status"] if r["status"] == "ok" else f"failed: {r['reason'][:80]}"
        out.append([r["family"], r["format"], str(r["threads"]), status, _fmt(r["size_mb"], 2), _metric(r),
                    _fmt(r["load_ms"], 0), _fmt(r["p50_ms"]), _fmt(r["p90_ms"]), _fmt(r["p99_ms"]),
                    _fmt(r["fps"], 1), _fmt(r["peak_rss_mb"], 0), speed])
    return out


def notes(result: dict) -> list[str]:
    """One line per artifact whose figures this machine bends (a row's ``note``), e.g. int8 saturation."""
    seen: dict[str, str] = {}
    for r in result["rows"]:
        if r.get("note"):
            seen.setdefault(f"{r['family']} {r['format']}", r["note"])
    return [f"{k}: {v}" for k, v in seen.items()]


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in esc])


def device_line(result: dict) -> str:
    d = result["device"]
    return (f"{d['cpu']} ({d['cores']} cores, {d['arch']}, {d['os']}; flags: {', '.join(d['cpu_flags']) or '-'}; "
            + ", ".join(f"{k} {v}" for k, v in d["libraries"].items()) + ")")


def recommendations_rows(result: dict) -> list[list[str]]:
    return [[r["family"], str(r["threads"]), r["format"], _fmt(r["p50_ms"]), r["fastest_format"],
             f"{r['vs_fastest']:.3f}", _fmt(r["speedup_vs_torch"]), r["basis"]] for r in result["recommendations"]]


REC_HEADER = ["Family", "Threads", "Deploy", "p50 ms", "Fastest", "vs fastest", "x torch", "Chosen on"]


def to_markdown(result: dict) -> str:
    s = result["settings"]
    parts = [
        "# edge benchmark", "",
        f"Device: {device_line(result)}", "",
        f"Created {result['created']}; batch {s['batch']}, {s['runs']} timed runs after warm-up, "
        f"{s['repeats']} interleaved repeats (each in its own process); p50 is the median over repeats.", "",
        markdown_table(COLUMNS, table_rows(result)), "",
        "## Deploy recommendation", "",
        markdown_table(REC_HEADER, recommendations_rows(result)), "",
    ]
    lines = notes(result)
    if lines:
        parts += ["## Notes on this machine", "", *(f"- {n}" for n in lines), ""]
    return "\n".join(parts)


def write_report(result: dict, out_dir: Path, stem: str = "bench") -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    paths["md"].write_text(to_markdown(result))
    png = plot(result, out_dir / f"{stem}.png")
    if png:
        paths["png"] = png
    return paths


def plot(result: dict, path: Path) -> Path | None:
    """Bar chart of p50 latency per family and format (log scale); skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in result["rows"] if r["status"] == "ok" and r["threads"] == result["settings"]["threads"][0]]
    if not rows:
        return None
    fams = list(dict.fromkeys(r["family"] for r in rows))
    fmts = list(dict.fromkeys(r["format"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(fams)), 4))
    width = 0.8 / len(fmts)
    for j, f in enumerate(fmts):
        xs, ys = [], []
        for i, fam in enumerate(fams):
            r = next((r for r in rows if r["family"] == fam and r["format"] == f), None)
            if r:
                xs.append(i + j * width)
                ys.append(r["p50_ms"])
        ax.bar(xs, ys, width, label=f)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(fams))], fams)
    ax.set_yscale("log")
    ax.set_ylabel(f"p50 latency, ms (batch 1, {result['settings']['threads'][0]} thread)")
    ax.set_title(result["device"]["cpu"][:60], fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load_result(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EdgeError(f"benchmark file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise EdgeError(f"{path} is not a benchmark JSON: {exc}") from None
    if "rows" not in data:
        raise EdgeError(f"{path} is not a benchmark JSON (no 'rows')")
    return data


def compare(a: dict, b: dict) -> tuple[list[str], list[list[str]]]:
    """Rows present in both: p50 of each and the ratio b/a (below 1: b is faster)."""
    index = {(r["family"], r["format"], r["threads"]): r for r in b["rows"]}
    header = ["Family", "Format", "Threads", "A p50 ms", "B p50 ms", "B/A"]
    rows = []
    for r in a["rows"]:
        o = index.get((r["family"], r["format"], r["threads"]))
        if not o:
            continue
        ratio = f"{o['p50_ms'] / r['p50_ms']:.2f}" if r.get("p50_ms") and o.get("p50_ms") else ""
        rows.append([r["family"], r["format"], str(r["threads"]), _fmt(r.get("p50_ms")), _fmt(o.get("p50_ms")), ratio])
    return header, rows
