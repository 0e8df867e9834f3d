"""Describe a model file (input shape, layout, output width, quantized or not) without importing TensorFlow.

.h5 files are read with h5py (the stored `model_config` JSON), .keras files as zip archives
(`config.json`), .onnx files with `onnx`, .tflite files with the LiteRT interpreter. This is what
`stquant inspect` runs on every model change in the TUI, so it must stay fast.
"""

import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.keras_lambda import check_stored_code
from engine.models import check_model_file, stored_code_trusted

FORMATS = {".h5": "h5", ".hdf5": "h5", ".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}
CHANNEL_COUNTS = (1, 3, 4)


@dataclass
class ModelInfo:
    """What the engine needs to know about a model's input and output."""

    path: str
    format: str
    input_name: str
    input_shape: list[int | None]
    layout: str
    input_dtype: str
    height: int | None
    width: int | None
    channels: int | None
    output_width: int | None
    quantized: bool
    opset: int | None = None
    lambda_layers: list[dict] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_format(path: Path) -> str:
    """The model format named by the file suffix ('h5' | 'keras' | 'onnx' | 'tflite')."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported model file type (expected {', '.join(FORMATS)})")
    return fmt


def describe_model(path: Path) -> ModelInfo:
    """Read the input/output description of a .h5, .keras, .onnx or .tflite model.

    Keras models: their Lambda layers are listed, and stored code that loading would run is refused
    (InputError) unless `engine.models.trust_stored_code(True)` was called.
    """
    path = check_model_file(path)
    fmt = model_format(path)
    readers = {"h5": _describe_h5, "keras": _describe_keras_zip, "onnx": _describe_onnx, "tflite": _describe_tflite}
    return readers[fmt](path)


def _image_info(path: Path, fmt: str, name: str, shape: list[int | None], layout: str | None, dtype: str,
                output_width: int | None, quantized: bool, opset: int | None = None) -> ModelInfo:
    if len(shape) != 4:
        raise InputError(f"{path}: input {name!r} has shape {shape}; an image classifier needs a 4-D input")
    layout = layout or guess_layout(shape)
    h, w, c = (shape[2], shape[3], shape[1]) if layout == "NCHW" else (shape[1], shape[2], shape[3])
    return ModelInfo(str(path), fmt, name, shape, layout, dtype, h, w, c, output_width, quantized, opset)


def guess_layout(shape: list[int | None]) -> str:
    """NCHW when dim 1 looks like a channel count and the last dim does not; NHWC otherwise."""
    return "NCHW" if shape[1] in CHANNEL_COUNTS and shape[3] not in CHANNEL_COUNTS else "NHWC"


# --- Keras (.h5 / .keras): the stored model config --------------------------------------------


def read_keras_config(path: Path) -> dict:
    """The model config stored in a .h5 (`model_config` attribute) or .keras (`config.json`) file."""
    if model_format(path) == "keras":
        try:
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        except (zipfile.BadZipFile, KeyError, ValueError):
            raise InputError(f"{path}: not a Keras model (no zip archive with config.json)") from None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        raise InputError(f"{path}: not a Keras model (not an HDF5 file)") from None
    if raw is None:
        raise InputError(f"{path}: HDF5 file holds no model_config (weights only?); a full saved model is needed")
    try:
        return json.loads(raw)
    except ValueError:
        raise InputError(f"{path}: the stored model_config is not valid JSON") from None


def _describe_h5(path: Path) -> ModelInfo:
    return _describe_keras_config(path, "h5", read_keras_config(path))


def _describe_keras_zip(path: Path) -> ModelInfo:
    return _describe_keras_config(path, "keras", read_keras_config(path))


def _describe_keras_config(path: Path, fmt: str, config: dict) -> ModelInfo:
    lambdas = check_stored_code(path, config, stored_code_trusted())
    try:
        layers = config["config"]["layers"]
        first = _input_layer(config, layers)
        layer_config = first["config"]
        shape = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
        if shape is None:
            shape = config["config"]["build_input_shape"]
    except (KeyError, IndexError, TypeError):
        raise InputError(f"{path}: cannot find the input shape in the stored Keras model config") from None
    shape = [None, *shape[1:]]
    dtype = _dtype_name(layer_config.get("dtype", "float32"))
    name = layer_config.get("name", first.get("name", "input"))
    info = _image_info(path, fmt, name, shape, "NHWC", dtype, _keras_output_width(config, layers), False)
    info.lambda_layers = [item.to_dict() for item in lambdas]
    return info


def _input_layer(config: dict, layers: list[dict]) -> dict:
    inputs = config["config"].get("input_layers")
    if inputs:
        name = inputs[0] if isinstance(inputs[0], str) else inputs[0][0]
        return next(layer for layer in layers if layer.get("name", layer["config"].get("name")) == name)
    return layers[0]


def _keras_output_width(config: dict, layers: list[dict]) -> int | None:
    """Units of the layer that produces the output, walking back through shape-preserving layers."""
    by_name = {layer.get("name", layer["config"].get("name")): layer for layer in layers}
    outputs = config["config"].get("output_layers")
    if outputs:
        name = outputs[0] if isinstance(outputs[0], str) else outputs[0][0]
        layer = by_name.get(name)
    else:
        layer = layers[-1] if layers else None
    sequential_index = len(layers) - 1
    while layer is not None:
        cfg = layer["config"]
        for key in ("units", "filters"):
            if isinstance(cfg.get(key), int):
                return cfg[key]
        if outputs:
            parent = _inbound_name(layer)
            layer = by_name.get(parent) if parent else None
        else:
            sequential_index -= 1
            layer = layers[sequential_index] if sequential_index >= 0 else None
    return None


def _inbound_name(layer: dict) -> str | None:
    """Name of the first layer feeding `layer`, for both Keras 2 and Keras 3 config formats."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return None
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [{"config": {"keras_history": [name, 0, 0]}}]}
        args = node.get("args") or []
        first = args[0] if args else None
        if isinstance(first, list):
            first = first[0] if first else None
        return first["config"]["keras_history"][0] if isinstance(first, dict) else None
    return node[0][0] if node and isinstance(node[0], list) else None  # Keras 2: [[name, 0, 0, {}]]


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        return dtype.get("config", {}).get("name", "float32")
    return str(dtype)


# --- ONNX -----------------------------------------------------------------------------------


def _describe_onnx(path: Path) -> ModelInfo:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - onnx raises DecodeError and others for non-ONNX files
        raise InputError(f"{path}: not an ONNX model (cannot be parsed)") from None
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs or not graph.output:
        raise InputError(f"{path}: ONNX model has no graph input or output")
    tensor = inputs[0].type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if shape:
        shape[0] = None
    out_dims = graph.output[0].type.tensor_type.shape.dim
    output_width = out_dims[-1].dim_value if out_dims and out_dims[-1].HasField("dim_value") else None
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
    return _image_info(path, "onnx", inputs[0].name, shape, None, dtype, output_width,
                       onnx_is_quantized(model), onnx_opset(model))


def onnx_opset(model: Any) -> int | None:
    """The default-domain opset version an ONNX model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def onnx_is_quantized(model: Any) -> bool:
    """True for an ONNX model holding INT8/UINT8 initializers or QuantizeLinear nodes."""
    from onnx import TensorProto

    int_types = (TensorProto.INT8, TensorProto.UINT8)
    return any(t.data_type in int_types for t in model.graph.initializer) or any(
        n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in model.graph.node
    )


# --- TFLite ---------------------------------------------------------------------------------


def _describe_tflite(path: Path) -> ModelInfo:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError):
        raise InputError(f"{path}: not a TFLite model (cannot be parsed)") from None
    detail = interpreter.get_input_details()[0]
    shape = [int(d) for d in detail["shape_signature"]]
    shape = [None, *[d if d > 0 else None for d in shape[1:]]]
    out = interpreter.get_output_details()[0]["shape_signature"]
    output_width = int(out[-1]) if len(out) and out[-1] > 0 else None
    quantized = any(t["dtype"].__name__ in ("int8", "uint8") for t in interpreter.get_tensor_details()
                    if t["index"] not in (detail["index"],) and t["quantization_parameters"]["scales"].size)
    return _image_info(path, "tflite", detail["name"], shape, "NHWC", detail["dtype"].__name__, output_width, quantized)
