"""The riskiest graph: EfficientNet-B4 behind a Spatial Transformer (grid_sample) in every fp32 format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge import runtime
from edge.export.pipeline import export_family
from edge.families import get_family
from edge.formats import parse_formats
from edge.models.stn import SpatialTransformer, affine_grid, stn_efficientnet_b4


def test_affine_grid_matches_torch():
    theta = torch.randn(4, 6)
    ours = affine_grid(theta, 20, 30)
    ref = torch.nn.functional.affine_grid(theta.view(-1, 2, 3), [4, 1, 20, 30], align_corners=False)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_stn_starts_as_identity():
    stn = SpatialTransformer(1).eval()
    x = torch.rand(2, 1, 40, 40)
    torch.testing.assert_close(stn(x), x, atol=1e-5, rtol=1e-5)


def test_b4_block_drop_is_a_builder_argument():
    """The CPU recipe trains B4 without stochastic depth; torchvision's 0.2 stays the builder's default."""

    def rates(net: torch.nn.Module) -> set[float]:
        return {m.p for m in net.modules() if type(m).__name__ == "StochasticDepth"}

    assert max(rates(stn_efficientnet_b4())) > 0.15
    assert rates(stn_efficientnet_b4(stochastic_depth=0.0)) == {0.0}


@pytest.fixture(scope="module")
def asl_artifacts(tmp_path_factory):
    out = tmp_path_factory.mktemp("asl")
    results = export_family(get_family("asl"), parse_formats("torch,onnx,onnx-int8,ncnn,tflite"), out, imgsz=64,
                            calib_n=16, verify_n=6)
    return out, {r.format: r for r in results}


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8", "ncnn", "tflite"])
def test_asl_exports_with_parity(asl_artifacts, fmt):
    out, results = asl_artifacts
    r = results[fmt]
    assert r.status == "ok", r.reason
    if fmt != "onnx-int8":
        assert r.parity["top1_agreement"] == 1.0 and r.parity["rel_max_diff"] < 1e-2
    model = runtime.load(r.artifact)
    assert model.predict(np.zeros((2, 1, 64, 64), np.float32)).shape == (2, 26)


def test_onnx_int8_keeps_the_sampling_grid_in_float(asl_artifacts):
    import onnx

    out, results = asl_artifacts
    graph = onnx.load(results["onnx-int8"].artifact).graph
    producer = {o: n for n in graph.node for o in n.output}
    grid_sample = next(n for n in graph.node if n.op_type == "GridSample")
    assert producer[grid_sample.input[1]].op_type != "DequantizeLinear"
    assert int(results["onnx-int8"].parity["n"]) == 6
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
