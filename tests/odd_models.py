"""Odd but well-formed model files for the model checks and the fuzzer, built without TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Dim = int | str | None


def onnx_classifier(
    path: Path,
    dims: list[Dim],
    classes: int = 10,
    elem_type: int = TensorProto.FLOAT,
    extra_inputs: int = 0,
    output_dims: list[Dim] | None = None,
) -> Path:
    """x -> GlobalAveragePool -> Flatten -> Gemm -> y: runnable when `dims` is a 4-D NCHW float shape.

    `dims` may hold numbers (0 and -1 included), symbols ('H') and None (a dim with neither)."""
    channels = dims[1] if len(dims) > 1 and isinstance(dims[1], int) and dims[1] > 0 else 3
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["scores"]),
    ]
    out = "scores"
    if output_dims is not None and len(output_dims) == 4:
        nodes.append(helper.make_node("Unsqueeze", ["scores", "axes"], ["y"]))
        out = "y"
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (channels, classes)).astype("float32"), "fw"),
        numpy_helper.from_array(np.zeros(classes, "float32"), "fb"),
    ]
    if out == "y":
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    inputs = [_value_info("x", elem_type, dims)]
    inputs += [_value_info(f"x{i + 2}", TensorProto.FLOAT, dims) for i in range(extra_inputs)]
    outputs = [_value_info(out, TensorProto.FLOAT, output_dims or ["N", classes])]
    graph = helper.make_graph(nodes, "odd", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.write_bytes(model.SerializeToString())
    return path


def _value_info(name: str, elem_type: int, dims: list[Dim]) -> onnx.ValueInfoProto:
    info = helper.make_tensor_value_info(name, elem_type, [d if d is not None else "_" for d in dims])
    for dim, value in zip(info.type.tensor_type.shape.dim, dims):
        if value is None:
            dim.Clear()  # neither a value nor a symbol
    return info


def keras_h5(
    path: Path, batch_shape: list[int | None], dtype: str = "float32", inputs: int = 1, classes: int = 10
) -> Path:
    """An HDF5 file holding only a Keras 2 functional `model_config` (what `describe_model` reads)."""
    names = [f"input_{i + 1}" for i in range(inputs)]
    layers = [
        {
            "class_name": "InputLayer",
            "name": name,
            "inbound_nodes": [],
            "config": {"batch_input_shape": batch_shape, "dtype": dtype, "name": name},
        }
        for name in names
    ]
    layers.append(
        {
            "class_name": "Dense",
            "name": "dense",
            "inbound_nodes": [[[names[0], 0, 0, {}]]],
            "config": {"units": classes, "name": "dense"},
        }
    )
    config = {
        "class_name": "Functional",
        "config": {
            "name": "odd",
            "layers": layers,
            "input_layers": [[n, 0, 0] for n in names],
            "output_layers": [["dense", 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
    return path
