"""Tiny real models for tests, built with onnx.helper (no TensorFlow needed)."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path, channels: int = 3, classes: int = 10, size: int = 8) -> Path:
    """An NCHW classifier: Conv(size x size) -> Flatten -> Softmax, opset 13."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(classes, channels, size, size)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(classes, np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["conv"]),
            helper.make_node("Flatten", ["conv"], ["flat"]),
            helper.make_node("Softmax", ["flat"], ["probs"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path
