"""Where an ONNX int8 model will run decides how its weights are stored: one table of targets.

onnxruntime multiplies U8 activations by S8 weights. ARM boards and x86 CPUs with VNNI sum those products exactly;
x86 CPUs without VNNI use AVX2's VPMADDUBSW, which adds two products in int16 and saturates (the zoo's FER model
loses 0.7 points there). Two ways out on such a CPU: the same integers stored unsigned (weight + 128, zero point
128), which onnxruntime runs on U8 x U8 kernels that widen to 32 bits first (exact, slower), or 7-bit weights
(fast, twice the rounding error). Measured on an AVX2 CPU without VNNI (NOTES, session r): FER test 0.6874 as S8,
0.6946 as U8 (the VNNI and ARM figure), single-image latency 1.4-1.8x (docs/bench/int8-s8-vs-u8-x86-novnni-2core.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.int8 import resign_weights, stored_weights


@dataclass(frozen=True)
class Int8Target:
    name: str
    weights: str  # "s8" or "u8": how the weight integers are stored
    bits: int  # 8, or 7 for onnxruntime's reduce_range
    note: str


INT8_TARGETS: dict[str, Int8Target] = {t.name: t for t in (
    Int8Target("arm", "s8", 8, "ARM boards and phones (a Pi): U8 x S8 kernels, exact"),
    Int8Target("x86-vnni", "s8", 8, "x86 CPUs with VNNI (AVX512-VNNI, AVX-VNNI, AMX): exact and fastest"),
    Int8Target("x86", "u8", 8, "any x86 CPU: the same 8-bit integers stored unsigned, U8 x U8 kernels never "
                               "saturate; slower than U8 x S8 (1.4-1.8x measured on AVX2)"),
    Int8Target("x86-fast", "s8", 7, "x86 CPUs without VNNI, speed first: 7-bit weights cannot saturate U8 x S8, "
                                    "twice the rounding error"),
)}
DEFAULT_TARGET = "arm"


def target_here(machine: str | None = None, flags: set[str] | None = None) -> str:
    """The target for this CPU: arm, x86-vnni or x86 (exact everywhere; x86-fast is only ever asked for)."""
    from edge import runtime

    cpu = runtime.int8_cpu(machine, flags)
    return "x86" if cpu == "x86-unknown" else cpu


def get_target(name: str) -> Int8Target:
    """A target by name ('here' = this CPU's); unknown names list the known ones."""
    name = target_here() if name == "here" else name
    if name not in INT8_TARGETS:
        raise EdgeError(f"unknown int8 target {name!r}; choose from: {', '.join(INT8_TARGETS)}, here")
    return INT8_TARGETS[name]


def store_weights(path: Path, weights: str) -> int:
    """Rewrite a QDQ model file's weight integers in place as ``weights`` ("u8" or "s8"): q +/- 128 and its zero
    point +/- 128, the same real numbers (``edge.int8.resign_weights``). Returns how many weight tensors changed."""
    import onnx

    model = onnx.load(str(path))
    changed = resign_weights(model, weights)
    onnx.save(model, str(path))
    return changed


def retarget(src: Path | str, target: str, out_dir: Path | str) -> dict[str, object]:
    """Copy an ONNX int8 artifact with its weights stored for ``target`` (no checkpoint needed: the same integers,
    re-signed) and score both files on this CPU where the family's test data is present."""
    import shutil

    from edge import runtime
    from edge.bench.accuracy import evaluate
    from edge.manifest import read_manifest, write_manifest

    artifact, man = read_manifest(src, check_hash=True)
    if man.format != "onnx-int8":
        raise EdgeError(f"{artifact.name} is {man.format}: --int8-target re-stores ONNX int8 files only")
    t = get_target(target)
    bits = 8 if man.exporter.get("reduce_range") == "false" else 7
    if bits == 8 and t.bits == 7:
        raise EdgeError(f"{artifact.name} has 8-bit weights and {t.name} stores 7-bit ones: only a new export from "
                        f"the checkpoint changes the bits ('edge export <run>/best.pt --int8-target {t.name}')")
    dst = Path(out_dir) / man.family / artifact.name
    if dst.resolve() == artifact.resolve():
        raise EdgeError(f"{dst} is the source file; choose another --out")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(artifact, dst)
    source_weights = stored_weights(man.exporter)
    extra = {}
    if bits == 7:  # 7-bit weights cannot saturate: right for every target as they are
        changed = 0
        extra["note"] = "7-bit weights are exact on every CPU: copied unchanged (a new export from the checkpoint " \
                        "gives 8-bit ones)"
    else:
        changed = store_weights(dst, t.weights)
        man.exporter.update({
            "int8_target": t.name, "int8_weights": t.weights,
            "quantizer": man.exporter.get("quantizer", "").replace(f"{source_weights.upper()} {bits}-bit",
                                                                   f"{t.weights.upper()} {bits}-bit"),
            "rewritten_from": f"{artifact.name} sha256 {man.sha256[:12]} ({source_weights} weights)",
        })
    write_manifest(dst, man)
    after = evaluate(runtime.load(dst))
    before = after if bits == 7 else evaluate(runtime.load(artifact))  # a 7-bit copy is the same file
    return {"family": man.family, "artifact": str(dst), "target": t.name, "weights": stored_weights(man.exporter),
            "tensors_changed": changed, "metric": (after or {}).get("metric"),
            "source_here": (before or {}).get("value"), "here": (after or {}).get("value"), **extra}
