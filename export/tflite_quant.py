"""PT2E int8 quantizer for LiteRT that observes conv + ReLU6 after the clamp.

litert-torch's ``PT2EQuantizer`` fuses conv + ReLU but not conv + ReLU6 (``hardtanh(0, 6)``): the conv output gets
its own observer, which sees the unclamped range (often -20..20 after batch-norm folding), and the ReLU6 shares
it, so the 0..6 that survives the clamp is left with a fraction of the 256 levels. MobileNetV2 has a ReLU6 after
all but its projection convs. This quantizer annotates conv + ReLU6 as one partition, observed at the clamp's
output, as the stock one does for conv + ReLU; TFLite runs it as one conv with a fused RELU6.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from litert_torch.quantize import pt2e_quantizer
from litert_torch.quantize import pt2e_quantizer_utils as utils
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

_CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
_CLAMPS = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)


def _is_relu6(node: Node) -> bool:
    if node.op != "call_function" or node.target not in _CLAMPS:
        return False
    low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", -1.0)
    high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max_val", 1.0)
    return (float(low), float(high)) == (0.0, 6.0)


def annotate_conv_relu6(gm: GraphModule, config: utils.QuantizationConfig | None,
                        filter_fn: Callable[[Node], bool] | None = None) -> list[list[Node]]:
    """Annotate every conv whose only user is a ReLU6 as one partition observed after the clamp."""
    partitions = []
    for clamp in gm.graph.nodes:
        if not _is_relu6(clamp):
            continue
        conv = clamp.args[0]
        if not isinstance(conv, Node) or conv.op != "call_function" or conv.target not in _CONVS \
                or len(conv.users) != 1:
            continue
        weight = conv.args[1]
        bias = conv.args[2] if len(conv.args) > 2 else None
        qspecs = {conv.args[0]: utils.get_input_act_qspec(config), weight: utils.get_weight_qspec(config)}
        partition = [clamp, conv, weight]
        if isinstance(bias, Node):
            qspecs[bias] = utils.get_bias_qspec(config)
            partition.append(bias)
        if utils._is_annotated(partition) or (filter_fn and not all(filter_fn(n) for n in partition)):
            continue
        conv.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=qspecs, _annotated=True)
        clamp.meta["quantization_annotation"] = QuantizationAnnotation(
            output_qspec=utils.get_output_act_qspec(config), _annotated=True)
        utils._mark_nodes_as_annotated(partition)
        partitions.append(partition)
    return partitions


class ReLU6FusingQuantizer(pt2e_quantizer.PT2EQuantizer):
    """``PT2EQuantizer`` that also fuses conv + ReLU6 (static quantization only)."""

    def _annotate_all_static_patterns(self, model: GraphModule, quantization_config, filter_fn=None) -> GraphModule:
        if quantization_config is not None:
            annotate_conv_relu6(model, quantization_config, filter_fn)
        return super()._annotate_all_static_patterns(model, quantization_config, filter_fn)


def int8_quantizer(fuse_relu6: bool = True) -> pt2e_quantizer.PT2EQuantizer:
    """Symmetric per-channel int8 weights, int8 activations; ``fuse_relu6=False`` is the stock quantizer."""
    cls = ReLU6FusingQuantizer if fuse_relu6 else pt2e_quantizer.PT2EQuantizer
    return cls().set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
