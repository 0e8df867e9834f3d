"""A Keras 2 .h5 whose Lambda layer holds stored code (marshalled bytecode), for the Model step's trust tick."""

from __future__ import annotations

import base64
import json
import marshal
from pathlib import Path

import h5py


def lambda_model(path: Path) -> Path:
    """A Keras 2 .h5 holding only a config: Input 16x16x3 → Lambda `t ** 2` (not recognised) → Dense(10)."""
    code = base64.b64encode(marshal.dumps((lambda t: t**2).__code__)).decode()
    layers = [
        {
            "class_name": "InputLayer",
            "name": "image",
            "config": {"name": "image", "batch_input_shape": [None, 16, 16, 3], "dtype": "float32"},
            "inbound_nodes": [],
        },
        {
            "class_name": "Lambda",
            "name": "square",
            "config": {"name": "square", "function": [code, None, None], "function_type": "lambda", "arguments": {}},
            "inbound_nodes": [[["image", 0, 0, {}]]],
        },
        {
            "class_name": "Dense",
            "name": "scores",
            "config": {"name": "scores", "units": 10},
            "inbound_nodes": [[["square", 0, 0, {}]]],
        },
    ]
    config = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": layers,
            "input_layers": [["image", 0, 0]],
            "output_layers": [["scores", 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.8.0"
    return path
