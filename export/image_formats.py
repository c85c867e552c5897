"""Exporters for image models: ONNX, ONNX int8 (ORT static QDQ), TFLite fp32/int8 (litert-torch), NCNN (pnnx)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from edge.errors import EdgeError
from edge.export.int8_targets import DEFAULT_TARGET, get_target, store_weights

log = logging.getLogger(__name__)
OPSET = 20  # the dynamo exporter's default; GridSample (opset 16+) and everything else fit


@contextlib.contextmanager
def quiet():
    """Converters print pages of progress (from C++ too); keep it off the terminal unless it fails."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield buf
        except Exception:
            sink.seek(0)
            log.debug("converter output:\n%s%s", sink.read()[-4000:].decode(errors="replace"), buf.getvalue()[-4000:])
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def export_onnx(model: torch.nn.Module, sample: torch.Tensor, out: Path) -> dict[str, str]:
    """Dynamo exporter, opset 20, dynamic batch, single file, checked and simplified."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=1024)
    with quiet():
        program = torch.onnx.export(
            model, (sample,), dynamo=True, opset_version=OPSET, input_names=["input"], output_names=["output"],
            dynamic_shapes=({0: batch},), external_data=False, optimize=True, verbose=False,
        )
        program.save(str(out), external_data=False)
    if out.with_name(out.name + ".data").exists():
        raise EdgeError(f"{out.name} was written with external data; it must be a single file")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    notes = {"opset": str(OPSET), "exporter": "torch.onnx dynamo"}
    try:
        import onnxslim

        with quiet():
            slim = onnxslim.slim(proto)
        onnx.checker.check_model(slim, full_check=True)
        onnx.save(slim, str(out))
        before, after = len(proto.graph.node), len(slim.graph.node)
        notes["simplified"] = f"onnxslim {onnxslim.__version__}: {before} -> {after} nodes"
    except ImportError:
        notes["simplified"] = "no (onnxslim not installed)"
    return notes


def float_island(model_path: Path) -> list[str]:
    """Nodes that compute GridSample sampling grids (the STN branch): they stay in float."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    keep: set[str] = set()
    stack = [n.input[1] for n in graph.node if n.op_type == "GridSample" and len(n.input) > 1]
    keep |= {n.name for n in graph.node if n.op_type == "GridSample"}
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in keep:
            continue
        keep.add(node.name)
        stack.extend(node.input)
    return sorted(keep)


def quantize_onnx(fp32: Path, out: Path, calib: np.ndarray, target: str = DEFAULT_TARGET) -> dict[str, str]:
    """onnxruntime static quantization: QDQ, per-channel symmetric weights, uint8 activations, stored for ``target``.

    ``target`` is a name in ``int8_targets.INT8_TARGETS``: S8 8-bit weights for ARM and VNNI x86 (the default),
    the same integers stored unsigned for any x86 ("x86": U8 x U8 kernels never saturate), or 7-bit weights
    ("x86-fast", onnxruntime's reduce_range: no saturation, twice the rounding error; FER -0.8 points on val).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    t = get_target(target)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(np.split(calib, len(calib)))

        def get_next(self):  # noqa: ANN201 - ORT's interface
            x = next(self.it, None)
            return None if x is None else {"input": x.astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        with quiet():
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            exclude = float_island(pre)
            quantize_static(
                str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=t.bits == 7,
                nodes_to_exclude=exclude,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    if t.weights == "u8":
        store_weights(out, "u8")
    return {"quantizer": f"onnxruntime quantize_static QDQ per-channel (U8 activations, {t.weights.upper()} "
                         f"{t.bits}-bit weights)",
            "int8_target": t.name, "int8_weights": t.weights, "reduce_range": str(t.bits == 7).lower(),
            "calibration_images": str(len(calib)), "float_nodes": str(len(exclude))}


def export_tflite(model: torch.nn.Module, sample: torch.Tensor, out: Path, calib: np.ndarray | None = None,
                  fuse_relu6: bool = True) -> dict[str, str]:
    """litert-torch conversion (no TensorFlow); with ``calib``, PT2E static int8 per-channel.

    ``fuse_relu6`` observes conv + ReLU6 after the clamp (see ``tflite_quant``); False is litert-torch's stock
    quantizer, which cost the FER model 1.6 points on test.
    """
    import litert_torch

    sample = sample[:1]
    with quiet():
        if calib is None:
            edge_model = litert_torch.convert(model, (sample,))
            notes = {"converter": f"litert-torch {litert_torch.__version__} fp32"}
        else:
            from litert_torch.quantize.quant_config import QuantConfig
            from torchao.quantization.pt2e import quantize_pt2e

            from .tflite_quant import int8_quantizer

            quantizer = int8_quantizer(fuse_relu6)
            graph = torch.export.export(model, (sample,)).module()
            graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for x in np.split(calib, len(calib)):
                    graph(torch.from_numpy(x))
            graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
            edge_model = litert_torch.convert(graph, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            notes = {"converter": f"litert-torch {litert_torch.__version__} PT2E int8 per-channel",
                     "relu6_fused": str(fuse_relu6).lower(),
                     "calibration_images": str(len(calib))}
        edge_model.export(str(out))
    return notes


def export_ncnn(model: torch.nn.Module, sample: torch.Tensor, out_dir: Path) -> dict[str, str]:
    """pnnx -> model.ncnn.param/.bin in ``out_dir`` (fp32: pnnx stores fp16 by default)."""
    import pnnx

    if out_dir.exists():
        shutil.rmtree(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        try:
            os.chdir(tmp)  # pnnx writes side files next to the .pt and into the cwd
            with quiet():
                pnnx.export(model, str(Path(tmp) / "model.pt"), (sample[:1],), fp16=False)
        finally:
            os.chdir(cwd)
        param, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
        if not param.exists():
            raise EdgeError("pnnx wrote no model.ncnn.param")
        text = param.read_text()
        layers = {line.split()[0] for line in text.splitlines()[2:] if line.strip()}
        unsupported = sorted(t for t in layers if t.startswith(("F.", "torch.", "Tensor.", "pnnx.")))
        if unsupported:
            raise EdgeError(f"ncnn has no layer for: {', '.join(unsupported)}")
        out_dir.mkdir(parents=True)
        shutil.copy(param, out_dir / "model.ncnn.param")
        shutil.copy(weights, out_dir / "model.ncnn.bin")
    return {"converter": f"pnnx {getattr(pnnx, '__version__', '')} fp16=False".strip()}
