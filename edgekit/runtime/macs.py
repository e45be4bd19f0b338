"""Multiply-accumulate counts of a `.tflite` model, from its operators and tensor shapes.

Counted for the operators that carry nearly all the work of vision and MLP models (convolutions,
depthwise convolutions, transposed convolutions, fully-connected and batch matmul); other
operators count zero. Used to report achieved GMAC/s and what channel pruning saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.runtime.inspect_model import plain_interpreter
from edgekit.runtime.interpreter import ops_details


def _shape(details: dict[int, dict[str, Any]], index: int) -> tuple[int, ...]:
    return tuple(int(d) for d in details[index]["shape"]) if index in details else ()


def op_macs(op: dict[str, Any], details: dict[int, dict[str, Any]]) -> int:
    """MACs of one operator (batch as in the model's tensors)."""
    name = op["op_name"]
    inputs = [int(i) for i in op["inputs"]]
    outputs = [int(i) for i in op["outputs"]]
    if not inputs or not outputs:
        return 0
    out_shape = _shape(details, outputs[0])
    out_elements = int(np.prod(out_shape)) if out_shape else 0
    if name == "CONV_2D" and len(inputs) > 1:
        _, kh, kw, cin = _shape(details, inputs[1])  # OHWI
        return out_elements * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D" and len(inputs) > 1:
        _, kh, kw, _ = _shape(details, inputs[1])  # 1HW(C*M)
        return out_elements * kh * kw
    if name == "TRANSPOSE_CONV" and len(inputs) > 2:
        cout, kh, kw, cin = _shape(details, inputs[1])
        return int(np.prod(_shape(details, inputs[2]))) * kh * kw * cout
    if name == "CONV_3D" and len(inputs) > 1:
        kd, kh, kw, cin, _ = _shape(details, inputs[1])
        return out_elements * kd * kh * kw * cin
    if name == "FULLY_CONNECTED" and len(inputs) > 1:
        weights = _shape(details, inputs[1])  # (units, in_features)
        return out_elements * (weights[-1] if weights else 0)
    if name == "BATCH_MATMUL" and len(inputs) > 1:
        a = _shape(details, inputs[0])
        return out_elements * (a[-1] if a else 0)
    return 0


def count_macs(model_path: str | Path) -> int:
    """Total MACs of one inference of a `.tflite` model."""
    interpreter = plain_interpreter(Path(model_path))
    details = {int(d["index"]): d for d in interpreter.get_tensor_details()}
    return sum(op_macs(op, details) for op in ops_details(interpreter))
