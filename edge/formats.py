"""The one table of formats: it drives export, verification and the benchmark (as Ultralytics' exporter).

Kept in ``edge`` (no torch) because the runtime and the bench read it too.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from edge.errors import EdgeError


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # appended to the family name: fer.int8.onnx, fer.ncnn (a folder)
    export_needs: tuple[str, ...]  # import names needed to export
    run_needs: tuple[str, ...]  # import names needed to run
    extra: str  # pip extra that brings them
    int8: bool
    kinds: tuple[str, ...]  # image and/or tree families
    description: str

    def missing(self, for_export: bool) -> list[str]:
        needs = self.export_needs if for_export else self.run_needs
        return [m for m in needs if importlib.util.find_spec(m) is None]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("torch", ".pt", ("torch",), ("torch",), "train", False, ("image",),
               "PyTorch eager reference (the checkpoint)"),
        Format("onnx", ".onnx", ("torch", "onnx", "onnxscript", "onnxruntime"), ("onnxruntime",), "export", False,
               ("image",), "ONNX opset 20 (dynamo exporter), dynamic batch, simplified, single file"),
        Format("onnx-int8", ".int8.onnx", ("torch", "onnx", "onnxruntime"), ("onnxruntime",), "export", True,
               ("image",), "onnxruntime static QDQ int8, per-channel, calibrated on real data"),
        Format("tflite", ".tflite", ("torch", "litert_torch"), ("ai_edge_litert",), "export", False, ("image",),
               "TFLite fp32 via litert-torch"),
        Format("tflite-int8", ".int8.tflite", ("torch", "litert_torch"), ("ai_edge_litert",), "export", True,
               ("image",), "TFLite int8 (PT2E static, per-channel) via litert-torch, calibrated on real data"),
        Format("ncnn", ".ncnn", ("torch", "pnnx"), ("ncnn",), "export", False, ("image",),
               "NCNN fp32 param/bin via pnnx"),
        Format("c", ".c", ("sklearn", "m2cgen"), (), "export", False, ("tree",),
               "m2cgen C, compiled with gcc"),
        Format("micropython", ".py", ("sklearn", "m2cgen"), (), "export", False, ("tree",),
               "m2cgen Python that MicroPython runs"),
    ]
}

EDGE_FORMATS = [n for n in FORMATS if n != "torch"]


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise EdgeError(f"unknown format '{name}'; choose from: {', '.join(FORMATS)}") from None


def parse_formats(text: str | None, include_torch: bool = False) -> list[Format]:
    """'all' / None -> every edge format (plus torch if asked); else a comma list."""
    if not text or text == "all":
        names = (["torch"] if include_torch else []) + EDGE_FORMATS
        return [FORMATS[n] for n in names]
    return [get_format(n.strip()) for n in text.split(",") if n.strip()]


def artifact_name(family: str, fmt: Format) -> str:
    return f"{family}{fmt.suffix}"
