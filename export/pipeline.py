"""Export one family to the requested formats; every artifact gets a manifest and a parity check."""

from __future__ import annotations

import importlib.metadata as md
import logging
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge import runtime
from edge.bench.accuracy import evaluate
from edge.errors import EdgeError, MissingDependency
from edge.export.int8_targets import DEFAULT_TARGET
from edge.export.reference import DataSlice, Reference, image_slice, load_reference
from edge.families import Family
from edge.formats import Format, artifact_name
from edge.manifest import Manifest, read_manifest, write_manifest
from edge.parity import check, parity

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    family: str
    format: str
    status: str  # ok | failed | skipped
    artifact: str = ""
    seconds: float = 0.0
    reason: str = ""
    parity: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0


def versions(*packages: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in packages:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


EXPORTER_PACKAGES = ("torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "litert-torch", "ai-edge-litert",
                     "pnnx", "ncnn", "scikit-learn", "m2cgen", "numpy")


def base_manifest(ref: Reference, fmt: Format) -> Manifest:
    fam = ref.family
    return Manifest(
        family=fam.name, format=fmt.name, file="", task=fam.task, input=ref.spec,
        classes=list(ref.meta.get("classes") or fam.classes), embedding_size=fam.embedding_size,
        threshold=ref.meta.get("threshold"), trained=ref.trained,
        source={"checkpoint": str(ref.checkpoint), "trained": ref.trained, "note": ref.meta.get("note", ""),
                "metrics": ref.meta.get("metrics", {}),
                **({"data": ref.meta["data"]} if ref.meta.get("data") else {})},
        exporter=versions(*EXPORTER_PACKAGES), metrics=ref.meta.get("metrics", {}), prestep=dict(fam.prestep),
    )


def export_family(family: Family, formats: list[Format], out_dir: Path, checkpoint: Path | None = None,
                  imgsz: int | None = None, calib_n: int = 200, verify_n: int = 16,
                  progress: Any = None, int8_target: str = DEFAULT_TARGET) -> list[ExportResult]:
    """Export ``family`` to every format in ``formats`` under ``out_dir/<family>/``.

    ``int8_target``: where the ONNX int8 file will run, which decides how its weights are stored (``int8_targets``).
    """
    out = Path(out_dir) / family.name
    out.mkdir(parents=True, exist_ok=True)
    results: list[ExportResult] = []
    wanted = [f for f in formats if family.kind in f.kinds]
    for f in formats:
        if family.kind not in f.kinds:
            results.append(ExportResult(family.name, f.name, "skipped", reason=f"not for {family.kind} models"))
    if not wanted:
        return results

    if family.kind == "tree":
        from edge.export.tree_export import export_tree

        return results + export_tree(family, wanted, out, checkpoint, progress)

    spec = family.input_spec(imgsz)
    calib = image_slice(family, spec, "train", calib_n)
    ref = load_reference(family, checkpoint, out, imgsz, calib)
    data = ref.meta.get("data")  # a run on the user's folder is calibrated and checked on that folder's split
    if ref.spec != spec or data:  # a checkpoint brings its own input spec (size, equalisation)
        calib = image_slice(family, ref.spec, "train", calib_n, data=data)
    check_data = image_slice(family, ref.spec, "test", verify_n, seed=1, data=data)
    with torch.no_grad():
        ref_out = ref.model(torch.from_numpy(check_data.x)).numpy()
    for fmt in wanted:
        results.append(_export_one(ref, fmt, out, calib, check_data, ref_out, int8_target))
        if progress is not None:
            progress.update(1)
    return results


def _export_one(ref: Reference, fmt: Format, out: Path, calib: DataSlice, check_data: DataSlice,
                ref_out: np.ndarray, int8_target: str = DEFAULT_TARGET) -> ExportResult:
    name = ref.family.name
    res = ExportResult(name, fmt.name, "failed")
    missing = fmt.missing(for_export=True) + fmt.missing(for_export=False)
    if missing:
        res.reason = str(MissingDependency(missing[0].replace("_", "-"), fmt.extra, f"format {fmt.name}"))
        return res
    path = out / artifact_name(name, fmt)
    t0 = time.perf_counter()
    sample = torch.from_numpy(calib.x[:2].copy())
    try:
        man = base_manifest(ref, fmt)
        if fmt.name == "torch":
            notes = {"checkpoint": str(ref.checkpoint)}
            if ref.checkpoint.resolve() != path.resolve():  # keep the reference beside its exports for the bench
                import shutil

                shutil.copy2(ref.checkpoint, path)
        elif fmt.name == "onnx":
            notes = _import("export_onnx")(ref.model, sample, path)
        elif fmt.name == "onnx-int8":
            fp32 = out / artifact_name(name, _fmt("onnx"))
            if not fp32.exists():
                _import("export_onnx")(ref.model, sample, fp32)
            notes = _import("quantize_onnx")(fp32, path, calib.x, int8_target)
        elif fmt.name == "tflite":
            notes = _import("export_tflite")(ref.model, sample, path)
        elif fmt.name == "tflite-int8":
            notes = _import("export_tflite")(ref.model, sample, path, calib.x)
        elif fmt.name == "ncnn":
            notes = _import("export_ncnn")(ref.model, sample, path)
            man.io_names = {"input": "in0", "output": "out0"}
        else:
            raise EdgeError(f"no exporter for {fmt.name}")
        if fmt.int8:
            man.calibration = {"source": calib.source, "images": int(len(calib.x))}
        man.exporter.update({k: str(v) for k, v in notes.items()})
        write_manifest(path, man)
        model = runtime.load(path, threads=1)
        got = model.predict(check_data.x)
        p = parity(ref_out, got, ref.family.task)
        p["inputs"] = check_data.source
        kind = tolerance_kind(fmt.int8, ref.trained)
        ref_acc = (ref.meta.get("metrics") or {}).get("test_accuracy")
        if fmt.int8 and ref.trained and ref_acc is not None:
            acc = evaluate(model)
            if acc is not None:
                p["accuracy"], p["reference_accuracy"] = acc["value"], ref_acc
                p["accuracy_drop"] = round(ref_acc - acc["value"], 4)
                kind = "int8-accuracy"
        broken = check(p, kind)
        p["tolerance"] = kind
        p["within_tolerance"] = not broken
        man.parity = p
        write_manifest(path, man)
        res.parity, res.artifact = p, str(path)
        res.size_bytes = man.size_bytes
        if broken:
            res.reason = gate_reason(broken, man)
        else:
            res.status = "ok"
    except EdgeError as exc:
        res.reason = str(exc)
    except Exception as exc:  # a converter's own error: keep the first line, log the rest
        log.debug("export %s/%s failed:\n%s", name, fmt.name, traceback.format_exc())
        res.reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


def gate_reason(broken: list[str], man: Manifest, machine: str | None = None, flags: set[str] | None = None) -> str:
    """Why an export failed its parity gate; for 8-bit ONNX int8 measured on an x86 CPU without VNNI, also that
    the drop may be this CPU's (a Pi or a VNNI CPU runs the same file exactly) and the way out."""
    risk = runtime.int8_saturation_risk(man, machine, flags)
    if risk and runtime.int8_exact_here():  # the runtime ran the weights as U8 here: nothing saturated
        risk = None
    return "parity out of tolerance: " + "; ".join(broken) + (f" (measured here, where {risk})" if risk else "")


def tolerance_kind(int8: bool, trained: bool) -> str:
    return "fp32" if not int8 else ("int8" if trained else "int8-untrained")


def _import(name: str) -> Any:
    from edge.export import image_formats

    return getattr(image_formats, name)


def _fmt(name: str) -> Format:
    from edge.formats import FORMATS

    return FORMATS[name]


def verify_artifact(path: Path, n: int = 16) -> dict[str, Any]:
    """Re-run parity of an exported artifact against its source checkpoint (``edge verify``)."""
    artifact, man = read_manifest(path, check_hash=True)
    from edge.families import get_family

    family = get_family(man.family)
    if family.kind == "tree":
        from edge.export.tree_export import verify_tree

        return verify_tree(artifact, man)
    ckpt = Path(man.source.get("checkpoint", ""))
    if not ckpt.exists():
        raise EdgeError(f"the source checkpoint {ckpt} of {artifact.name} is gone; re-export to verify")
    ref = load_reference(family, ckpt, artifact.parent, man.input.shape[2])
    ref.spec = man.input
    data = image_slice(family, man.input, "test", n, seed=1, data=man.source.get("data"))
    with torch.no_grad():
        ref_out = ref.model(torch.from_numpy(data.x)).numpy()
    got = runtime.load(artifact).predict(data.x)
    p = parity(ref_out, got, family.task)
    p["inputs"] = data.source
    p["broken"] = check(p, tolerance_kind(man.format.endswith("int8"), man.trained))
    p["within_tolerance"] = not p["broken"]
    return p
