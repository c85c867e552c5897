"""ONNX int8 weights re-signed: the same integers stored U8 (q + 128, zero point + 128) or S8, the same real numbers.

onnxruntime picks its int8 kernels by the stored types: U8 x S8 saturates on x86 CPUs without VNNI, U8 x U8 does not.
``export/int8_targets.py`` uses this to write files for a target CPU; ``edge.runtime`` to run an S8 file exactly on
such a CPU, in memory. Needs the ``onnx`` package (imported by the caller).
"""

from __future__ import annotations

from typing import Any

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def stored_weights(exporter: dict[str, str]) -> str:
    """How a manifest's ONNX int8 weights are stored ("s8" before targets existed)."""
    return exporter.get("int8_weights", "s8")


def resign_weights(model: Any, weights: str) -> int:
    """Store an ONNX QDQ model's weight integers (the constant second input of Conv / Gemm / MatMul) as ``weights``
    ("u8" or "s8"), in place; returns how many weight tensors changed."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    src, dst, shift = ((TensorProto.INT8, np.uint8, 128) if weights == "u8" else (TensorProto.UINT8, np.int8, -128))
    inits = {i.name: i for i in model.graph.initializer}
    weight_inputs = {n.input[1] for n in model.graph.node if n.op_type in WEIGHTED_OPS and len(n.input) > 1}
    done: set[str] = set()
    changed = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.output[0] not in weight_inputs:
            continue
        w, zp = node.input[0], node.input[2]
        if w not in inits or zp not in inits or inits[w].data_type != src or inits[zp].data_type != src:
            continue
        for name in (w, zp):
            if name not in done:
                q = numpy_helper.to_array(inits[name]).astype(np.int16) + shift
                inits[name].CopyFrom(numpy_helper.from_array(q.astype(dst), name))
                done.add(name)
        changed += 1
    return changed
