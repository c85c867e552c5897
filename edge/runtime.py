"""One ``load(path)`` for every edge format; ``predict(batch)`` whatever the backend.

Backends: onnxruntime (.onnx), LiteRT (.tflite: ``ai_edge_litert``, then ``tflite_runtime``,
then ``tensorflow.lite``), ncnn (folder with ``model.ncnn.param``/``.bin``), the decision tree
as m2cgen C (compiled with the system C compiler, called through ctypes) or m2cgen Python /
MicroPython source, and torch checkpoints as the reference.  This module never imports torch
unless a torch checkpoint is loaded.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError, InputError, MissingDependency
from edge.int8 import resign_weights, stored_weights
from edge.manifest import Manifest, read_manifest

log = logging.getLogger(__name__)


class Model:
    """A loaded artifact: ``predict(batch) -> np.ndarray`` plus its manifest."""

    backend = "base"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        self.artifact = artifact
        self.manifest = manifest
        self.threads = threads

    # ------------------------------------------------------------------ public
    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(self.manifest.input.shape)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a batch shaped like the manifest's input spec."""
        batch = self._check(batch)
        return np.asarray(self._run(batch))

    def predict_all(self, x: np.ndarray, batch: int = 32) -> np.ndarray:
        """``predict`` over any number of inputs, ``batch`` at a time (bounded memory; same outputs in order)."""
        if len(x) == 0:
            raise InputError("predict_all: no inputs")
        return np.concatenate([self.predict(x[i : i + batch]) for i in range(0, len(x), batch)])

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        m = self.manifest
        return f"<{type(self).__name__} {m.family}/{m.format} {self.artifact.name}>"

    # ---------------------------------------------------------------- internal
    def _check(self, batch: Any) -> np.ndarray:
        spec = self.manifest.input
        want = tuple(spec.shape)
        expected = "(" + ", ".join("N" if d is None else str(d) for d in want) + ")"
        if not isinstance(batch, np.ndarray):
            raise InputError(f"predict() expects a numpy array shaped {expected}, got {type(batch).__name__}")
        if batch.ndim == len(want) - 1 and batch.shape == tuple(want[1:]):
            batch = batch[None]
        if batch.ndim != len(want) or any(w is not None and w != g for w, g in zip(want, batch.shape)):
            raise InputError(
                f"{self.manifest.family}/{self.manifest.format} expects input shape {expected} "
                f"{spec.dtype}, got {tuple(batch.shape)} {batch.dtype}"
            )
        if batch.shape[0] == 0:
            raise InputError("predict() got an empty batch")
        if batch.dtype != np.dtype(spec.dtype):
            if not np.issubdtype(batch.dtype, np.number):
                raise InputError(f"expected {spec.dtype} input, got {batch.dtype}")
            batch = batch.astype(spec.dtype)
        if not np.all(np.isfinite(batch)):
            raise InputError("input contains NaN or infinite values")
        return np.ascontiguousarray(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------- ONNX
class OnnxModel(Model):
    backend = "onnxruntime"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        super().__init__(artifact, manifest, threads)
        ort = _require("onnxruntime", "runtime", "the ONNX backend")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.int8_note = int8_note(manifest, path=artifact)
        self.int8_as_u8 = bool(self.int8_note) and int8_exact_here()
        try:  # S8 weights that would saturate here run as the same integers stored U8, in memory
            source = _u8_model_bytes(artifact) if self.int8_as_u8 else str(artifact)
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime and onnx raise their own exception types
            raise EdgeError(f"cannot load {artifact.name} with onnxruntime: {_first_line(exc)}") from None
        if self.int8_note:
            (log.info if self.int8_as_u8 else log.warning)("%s: %s", artifact.name, self.int8_note)
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def int8_cpu(machine: str | None = None, flags: set[str] | None = None) -> str:
    """This CPU as onnxruntime's int8 kernels see it: "arm" (any non-x86), "x86-vnni", "x86" (no VNNI: U8 x S8 sums
    saturate) or "x86-unknown" (its flags cannot be read)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "x86", "i686"):
        return "arm"
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return "x86-unknown"
    return "x86-vnni" if any(f in flags for f in VNNI_FLAGS) else "x86"


def int8_saturation_risk(manifest: Manifest, machine: str | None = None, flags: set[str] | None = None,
                         path: Path | None = None) -> str | None:
    """Why an ONNX int8 model with 8-bit S8 weights may lose accuracy on this CPU, or None.

    onnxruntime multiplies U8 activations by S8 weights with AVX2's VPMADDUBSW on x86 CPUs without VNNI, which adds
    two products in int16 and can saturate; ARM and VNNI CPUs are exact. Weights stored unsigned (``--int8-target
    x86``, U8 x U8 kernels) or at 7 bits (``x86-fast``; also every manifest without ``reduce_range``, the earlier
    default) are safe. ``path`` names the file in the advice (default: the manifest's file name).
    """
    if (manifest.format != "onnx-int8" or manifest.exporter.get("reduce_range") != "false"
            or stored_weights(manifest.exporter) != "s8" or int8_cpu(machine, flags) != "x86"):
        return None
    return ("8-bit S8 int8 weights on an x86 CPU without VNNI: onnxruntime's U8S8 products can saturate here; "
            f"'edge export {path or manifest.file} --int8-target x86' stores the same integers unsigned, exact "
            "on this CPU")


def _int8_exact_wanted() -> bool:
    """``EDGE_INT8_EXACT``: default on; 0 runs int8 files as stored (e.g. to measure the saturation)."""
    return os.environ.get("EDGE_INT8_EXACT", "1") != "0"


def int8_exact_here() -> bool:
    """Whether S8 int8 weights that would saturate on this CPU run as U8 in memory: wanted
    (``EDGE_INT8_EXACT``) and the ``onnx`` package there to rewrite them."""
    return _int8_exact_wanted() and importlib.util.find_spec("onnx") is not None


def int8_note(manifest: Manifest, machine: str | None = None, flags: set[str] | None = None,
              path: Path | None = None) -> str | None:
    """What this CPU does to an ONNX int8 file, for logs and benchmark notes: None where it runs exactly as stored."""
    risk = int8_saturation_risk(manifest, machine, flags, path)
    if risk is None:
        return None
    if int8_exact_here():
        return ("8-bit S8 int8 weights, which saturate on an x86 CPU without VNNI, run here as the same integers "
                "stored U8 (in memory; exact, 1.4-1.8x slower than S8; EDGE_INT8_EXACT=0 runs them as stored, "
                f"'edge export {path or manifest.file} --int8-target x86' writes such a file)")
    if _int8_exact_wanted():
        risk += "; with the onnx package (pip install onnx) the runtime does this in memory"
    return risk


def _u8_model_bytes(artifact: Path) -> bytes:
    """The model with its S8 weights stored U8 (``edge.int8``), serialised for onnxruntime."""
    import onnx

    model = onnx.load(str(artifact))
    resign_weights(model, "u8")
    return model.SerializeToString()


# ------------------------------------------------------------------- LiteRT
def tflite_interpreter_class() -> Any:
    for mod, attr in (
        ("ai_edge_litert.interpreter", "Interpreter"),
        ("tflite_runtime.interpreter", "Interpreter"),
        ("tensorflow.lite", "Interpreter"),
    ):
        try:
            return getattr(importlib.import_module(mod), attr)
        except ImportError:
            continue
    raise MissingDependency("ai-edge-litert", "runtime", "the TFLite backend (or tflite-runtime on a Pi)")


class TFLiteModel(Model):
    backend = "litert"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        super().__init__(artifact, manifest, threads)
        interpreter_cls = tflite_interpreter_class()
        self.backend = interpreter_cls.__module__.split(".")[0]
        try:
            self.interp = interpreter_cls(model_path=str(artifact), num_threads=threads)
            self.interp.allocate_tensors()
        except Exception as exc:
            raise EdgeError(f"cannot load {artifact.name} with LiteRT: {_first_line(exc)}") from None
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.fixed_batch = int(self.inp["shape"][0])
        # one interpreter holds one input and one output tensor: concurrent callers (edge serve's request threads)
        # take turns, or they overwrite each other's input and LiteRT refuses the invoke
        self._lock = threading.Lock()

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        scale, zero = self.inp.get("quantization", (0.0, 0))
        if self.inp["dtype"] != np.float32 and scale:
            x = np.clip(np.round(x / scale + zero), *_int_range(self.inp["dtype"])).astype(self.inp["dtype"])
        with self._lock:
            self.interp.set_tensor(self.inp["index"], x)
            self.interp.invoke()
            y = self.interp.get_tensor(self.out["index"]).copy()
        oscale, ozero = self.out.get("quantization", (0.0, 0))
        if self.out["dtype"] != np.float32 and oscale:
            y = (y.astype(np.float32) - ozero) * oscale
        return y

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] == self.fixed_batch:
            return self._invoke(batch)
        # Converted graphs have a fixed batch of 1: run a larger batch one sample at a time.
        if self.fixed_batch != 1:
            raise InputError(f"this .tflite was exported with batch {self.fixed_batch}, got {batch.shape[0]}")
        return np.concatenate([self._invoke(batch[i : i + 1]) for i in range(batch.shape[0])], axis=0)


def _int_range(dtype: Any) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


# --------------------------------------------------------------------- ncnn
class NcnnModel(Model):
    backend = "ncnn"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        super().__init__(artifact, manifest, threads)
        ncnn = _require("ncnn", "runtime", "the NCNN backend")
        self._ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.net.opt.use_vulkan_compute = False
        param, weights = artifact / "model.ncnn.param", artifact / "model.ncnn.bin"
        if not param.exists() or not weights.exists():
            raise EdgeError(f"{artifact} must hold model.ncnn.param and model.ncnn.bin")
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise EdgeError(f"cannot load the NCNN model in {artifact} (corrupt param/bin?)")
        self.in_name = manifest.io_names.get("input", "in0")
        self.out_name = manifest.io_names.get("output", "out0")

    def _run(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for x in batch:
            ex = self.net.create_extractor()
            ex.input(self.in_name, self._ncnn.Mat(np.ascontiguousarray(x)).clone())
            ret, y = ex.extract(self.out_name)
            if ret != 0:
                raise EdgeError(f"ncnn failed to run {self.artifact.name} (code {ret})")
            outs.append(np.array(y).reshape(-1))
        return np.stack(outs)


# --------------------------------------------------------- decision tree (C)
def compile_tree_c(source: Path, out_dir: Path | None = None) -> Path:
    """Compile m2cgen C into a shared library (cached by source hash)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise EdgeError("the C tree backend needs a C compiler (apt-get install gcc)")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out_dir = out_dir or Path(tempfile.gettempdir()) / "edge-tree-cache"
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"{source.stem}-{digest}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(source)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise EdgeError(f"cannot compile {source.name}: {proc.stderr.strip().splitlines()[-1:]}")
        os.replace(tmp, lib)
    return lib


class TreeCModel(Model):
    backend = "c"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        super().__init__(artifact, manifest, threads)
        self.lib = ctypes.CDLL(str(compile_tree_c(artifact)))
        self.fn = self.lib.score
        self.fn.restype = None
        self.fn.argtypes = [ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]
        self.n_out = len(manifest.classes)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(batch, dtype=np.float64)
        out = np.zeros((rows.shape[0], self.n_out), dtype=np.float64)
        dptr = ctypes.POINTER(ctypes.c_double)
        for i in range(rows.shape[0]):
            self.fn(rows[i].ctypes.data_as(dptr), out[i].ctypes.data_as(dptr))
        return out


# ------------------------------------------------- decision tree (Python/MPy)
class TreePythonModel(Model):
    backend = "python"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        super().__init__(artifact, manifest, threads)
        namespace: dict[str, Any] = {}
        try:
            exec(compile(artifact.read_text(), str(artifact), "exec"), namespace)  # noqa: S102 - our own artifact
        except SyntaxError as exc:
            raise EdgeError(f"{artifact.name} is not valid Python: {exc.msg} (line {exc.lineno})") from None
        if "score" not in namespace:
            raise EdgeError(f"{artifact.name} has no score() function")
        self.score = namespace["score"]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.array([self.score([float(v) for v in row]) for row in batch], dtype=np.float64)


# -------------------------------------------------------- torch (reference)
class TorchModel(Model):
    backend = "torch"

    def __init__(self, artifact: Path, manifest: Manifest, threads: int) -> None:
        super().__init__(artifact, manifest, threads)
        _require("torch", "train", "the torch reference backend")
        import torch

        from edge.models.checkpoint import load_model  # imports torch

        torch.set_num_threads(threads)
        self._torch = torch
        self.net = load_model(artifact).eval()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.net(self._torch.from_numpy(batch)).numpy()


BACKENDS: dict[str, type[Model]] = {
    "onnx": OnnxModel,
    "onnx-int8": OnnxModel,
    "tflite": TFLiteModel,
    "tflite-int8": TFLiteModel,
    "ncnn": NcnnModel,
    "c": TreeCModel,
    "micropython": TreePythonModel,
    "python": TreePythonModel,
    "torch": TorchModel,
}


def load(path: Path | str, threads: int = 1, check_hash: bool = False) -> Model:
    """Load an artifact (or its manifest) and return a ready model."""
    artifact, manifest = read_manifest(path, check_hash=check_hash)
    if threads < 1:
        raise EdgeError("threads must be >= 1")
    cls = BACKENDS.get(manifest.format)
    if cls is None:
        raise EdgeError(f"unknown format '{manifest.format}' in manifest; known: {', '.join(BACKENDS)}")
    t0 = time.perf_counter()
    model = cls(artifact, manifest, threads)
    model.load_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return model


def _require(module: str, extra: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(module.replace("_", "-"), extra, what) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
