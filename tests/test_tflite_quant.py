"""TFLite int8: conv + ReLU6 is observed after the clamp, so the clamped range keeps all 256 levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("litert_torch")

from edge.export.image_formats import export_tflite  # noqa: E402
from edge.export.tflite_quant import int8_quantizer  # noqa: E402


def _net() -> nn.Module:
    """Conv + BN + ReLU6 twice, as in MobileNetV2, with conv outputs spread far below zero before the clamp."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.weight.fill_(8.0)
            bn.bias.copy_(torch.linspace(-30.0, 4.0, 8))
    return net.eval()


def _prepared(fuse: bool) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import quantize_pt2e

    sample = torch.rand(1, 1, 16, 16)
    graph = torch.export.export(_net(), (sample,)).module()
    return quantize_pt2e.prepare_pt2e(graph, int8_quantizer(fuse))


@pytest.mark.parametrize("fuse", [True, False])
def test_relu6_is_observed_after_the_clamp(fuse):
    graph = _prepared(fuse)
    clamps = [n for n in graph.graph.nodes if n.op == "call_function" and "hardtanh" in str(n.target)]
    assert len(clamps) == 2
    for clamp in clamps:
        observed_before = clamp.args[0].op == "call_module"  # an observer between the conv and the clamp
        assert observed_before is not fuse
        assert all(user.op == "call_module" for user in clamp.users)  # observed (or shared) after the clamp


def _run(path, x: np.ndarray) -> np.ndarray:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the Pi's runtime
        from tflite_runtime.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    rows = []
    for row in x:
        if inp["dtype"] == np.int8:  # int8 in and out: the converter quantizes the graph's edges too
            row = np.clip(np.round(row / in_scale + in_zero), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        y = it.get_tensor(out["index"])[0].astype(np.float32)
        rows.append((y - out_zero) * out_scale if out["dtype"] == np.int8 else y)
    return np.stack(rows)


def test_fused_relu6_halves_the_int8_error(tmp_path):
    net = _net()
    rng = np.random.default_rng(0)
    calib = rng.random((32, 1, 16, 16), dtype=np.float32)
    x = rng.random((16, 1, 16, 16), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    errors = {}
    for fuse in (True, False):
        path = tmp_path / f"net-{fuse}.tflite"
        notes = export_tflite(net, torch.from_numpy(x[:1]), path, calib, fuse_relu6=fuse)
        assert notes["relu6_fused"] == str(fuse).lower()
        errors[fuse] = float(np.abs(_run(path, x) - ref).mean() / np.abs(ref).mean())
    assert errors[True] < 0.5 * errors[False], errors
