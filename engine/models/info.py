"""Describe a model file (input shape, layout, output width, quantized or not) without importing TensorFlow.

.h5 files are read with h5py (the stored `model_config` JSON), .keras files as zip archives
(`config.json`), .onnx files with `onnx`, .tflite files with the LiteRT interpreter. This is what
`stquant inspect` runs on every model change in the TUI, so it must stay fast.
"""

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.common.errors import ConfigError, InputError
from engine.models.files import (
    KerasConfig,
    check_model_file,
    model_format,
    read_keras_config,
    stored_code_trusted,
)
from engine.models.keras_lambda import check_stored_code

CHANNEL_COUNTS = (1, 3, 4)
# Above this many input values (H x W x C) no STM32 could hold even one int8 input image.
MAX_INPUT_VALUES = 16 * 1024 * 1024
FLOAT_INPUTS = {"onnx": ("float32",)}  # the input dtypes stquant feeds per format (others: any)


@dataclass
class ModelInfo:
    """What the engine needs to know about a model's input and output.

    `input_dims` labels each input dimension as stored (a number, or the symbol / '?' of a free one);
    `input_names` lists every graph input; `output_shape` is None where the file does not store it.
    """

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
    lambda_layers: list[KerasConfig] | None = None
    input_dims: list[str] | None = None
    input_names: list[str] | None = None
    output_name: str | None = None
    output_shape: list[int | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_model(path: Path) -> ModelInfo:
    """Read the input/output description of a .h5, .keras, .onnx or .tflite model.

    Keras models: their Lambda layers are listed, and stored code that loading would run is refused
    (InputError) unless `engine.models.load.trust_stored_code(True)` was called. A model stquant cannot
    feed images is still described: `require_image_classifier` refuses it.
    """
    path = check_model_file(path)
    fmt = model_format(path)
    readers = {"h5": _describe_h5, "keras": _describe_keras_zip, "onnx": _describe_onnx, "tflite": _describe_tflite}
    return readers[fmt](path)


def _image_info(
    path: Path,
    fmt: str,
    name: str,
    shape: list[int | None],
    dtype: str,
    output_width: int | None,
    quantized: bool,
    opset: int | None = None,
    dims: list[str] | None = None,
) -> ModelInfo:
    layout = guess_layout(shape, fmt) if len(shape) == 4 else ""
    h, w, c = _hwc(shape, layout)
    return ModelInfo(
        str(path),
        fmt,
        name,
        shape,
        layout,
        dtype,
        h,
        w,
        c,
        output_width,
        quantized,
        opset,
        input_dims=dims or [str(d) for d in shape],
        input_names=[name],
    )


def _hwc(shape: list[int | None], layout: str) -> tuple[int | None, int | None, int | None]:
    """Height, width, channels of a 4-D input (None where not a fixed positive size)."""
    if not layout:
        return None, None, None
    dims = (shape[2], shape[3], shape[1]) if layout == "NCHW" else (shape[1], shape[2], shape[3])
    h, w, c = (d if isinstance(d, int) and d > 0 else None for d in dims)
    return h, w, c


def guess_layout(shape: list[int | None], fmt: str = "onnx") -> str:
    """The one layout rule: TFLite and Keras inputs are NHWC; ONNX inputs are NCHW unless the shape clearly
    says NHWC (the last dim a channel count, dim 1 not)."""
    if fmt != "onnx":
        return "NHWC"
    return "NHWC" if shape[3] in CHANNEL_COUNTS and shape[1] not in CHANNEL_COUNTS else "NCHW"


def require_image_classifier(info: ModelInfo) -> tuple[int, int, int]:
    """The model's input (height, width, channels); ConfigError (one line naming the model, the input and the
    dimension) unless stquant can feed the model images: one 4-D input of fixed positive height, width and
    channels, of a dtype it feeds, of a sane size."""
    problem = image_input_problem(info)
    if problem:
        raise ConfigError(f"{Path(info.path).name}: {problem}")
    if info.height is None or info.width is None or info.channels is None:  # a problem above
        raise ConfigError(f"{Path(info.path).name}: the input has no fixed height, width and channels")
    return info.height, info.width, info.channels


def image_input_problem(info: ModelInfo) -> str | None:
    """Why stquant cannot feed `info`'s model images, or None."""
    names = info.input_names or [info.input_name]
    if len(names) != 1:
        listed = ", ".join(repr(n) for n in names[:4]) + (", ..." if len(names) > 4 else "")
        return f"{len(names)} inputs ({listed}); an image classifier needs exactly one image input"
    name, shape = info.input_name, info.input_shape
    if len(shape) != 4:
        return f"input {name!r} has shape {shape}; an image classifier needs a 4-D input"
    return _dimension_problem(info) or _dtype_problem(info) or _size_problem(info)


def _dimension_problem(info: ModelInfo) -> str | None:
    labels = info.input_dims or [str(d) for d in info.input_shape]
    axes = (
        {"height": 2, "width": 3, "channels": 1} if info.layout == "NCHW" else {"height": 1, "width": 2, "channels": 3}
    )
    for what, axis in axes.items():
        size = info.input_shape[axis]
        if not isinstance(size, int) or isinstance(size, bool):
            return (
                f"input {info.input_name!r} {what} is not fixed (dim {axis} is {labels[axis]!r}); "
                f"an image classifier needs a fixed HxW and channel count"
            )
        if size <= 0:
            return f"input {info.input_name!r} {what} is {size} (dim {axis}); an image classifier needs a positive size"
    return None


def _dtype_problem(info: ModelInfo) -> str | None:
    allowed = FLOAT_INPUTS.get(info.format)
    if allowed and info.input_dtype not in allowed:
        return (
            f"input {info.input_name!r} is {info.input_dtype}; stquant feeds {info.format.upper()} models "
            f"{' or '.join(allowed)} images (export the model with a float32 input)"
        )
    return None


def _size_problem(info: ModelInfo) -> str | None:
    h, w, c = info.height or 0, info.width or 0, info.channels or 0
    if h * w * c > MAX_INPUT_VALUES:
        return (
            f"input {info.input_name!r} is {h}x{w}x{c} ({h * w * c} values), above the {MAX_INPUT_VALUES} "
            f"values (16 MiB at int8) any STM32 could hold"
        )
    return None


# --- Keras (.h5 / .keras): the stored model config --------------------------------------------


def _describe_h5(path: Path) -> ModelInfo:
    return _describe_keras_config(path, "h5", read_keras_config(path))


def _describe_keras_zip(path: Path) -> ModelInfo:
    return _describe_keras_config(path, "keras", read_keras_config(path))


def _describe_keras_config(path: Path, fmt: str, config: KerasConfig) -> ModelInfo:
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
    if not isinstance(shape, (list, tuple)) or not shape or isinstance(shape[0], (list, tuple)):
        raise InputError(f"{path}: cannot find the input shape in the stored Keras model config")
    shape = [None, *shape[1:]]
    dtype = _dtype_name(layer_config.get("dtype", "float32"))
    name = layer_config.get("name", first.get("name", "input"))
    info = _image_info(path, fmt, name, shape, dtype, _keras_output_width(config, layers), False)
    info.input_names = _keras_input_names(config) or [name]
    info.lambda_layers = [item.to_dict() for item in lambdas]
    return info


def _keras_input_names(config: dict[str, Any]) -> list[str]:
    """Names of a functional model's input layers (empty for a Sequential model: one input)."""
    inputs = config["config"].get("input_layers") or []
    if inputs and isinstance(inputs[0], str):  # Keras 3 single input: ["name", 0, 0]
        return [inputs[0]]
    return [item[0] if isinstance(item, list) else str(item) for item in inputs]


def _input_layer(config: KerasConfig, layers: list[KerasConfig]) -> KerasConfig:
    inputs = config["config"].get("input_layers")
    if inputs:
        name = inputs[0] if isinstance(inputs[0], str) else inputs[0][0]
        return next(layer for layer in layers if layer.get("name", layer["config"].get("name")) == name)
    return layers[0]


def _keras_output_width(config: KerasConfig, layers: list[KerasConfig]) -> int | None:
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
            width = cfg.get(key)
            if isinstance(width, int):
                return width
        if outputs:
            parent = _inbound_name(layer)
            layer = by_name.get(parent) if parent else None
        else:
            sequential_index -= 1
            layer = layers[sequential_index] if sequential_index >= 0 else None
    return None


def _inbound_name(layer: KerasConfig) -> str | None:
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
        return str(dtype.get("config", {}).get("name", "float32"))
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
    _check_external_data(path, model)
    tensor = inputs[0].type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    labels = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    if shape:
        shape[0] = None
    out_dims = graph.output[0].type.tensor_type.shape.dim
    output_shape = [d.dim_value if d.HasField("dim_value") else None for d in out_dims]
    output_width = flat_width(output_shape)
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
    except (KeyError, ValueError):  # a type numpy has no dtype for (bfloat16, float8, strings)
        dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    info = _image_info(
        path, "onnx", inputs[0].name, shape, dtype, output_width, onnx_is_quantized(model), onnx_opset(model), labels
    )
    info.input_names = [i.name for i in inputs]
    info.output_name, info.output_shape = graph.output[0].name, output_shape
    return info


def flat_width(output_shape: list[int | None]) -> int | None:
    """Class scores per image in an output of this shape (its dims after the batch, flattened), or None if free."""
    dims = output_shape[1:]
    if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
        return None
    return int(math.prod(d for d in dims if d is not None))


def _check_external_data(path: Path, model: Any) -> None:
    """Every external-data file the model names must lie in its folder (ConfigError) and exist (InputError)."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    folder = path.resolve().parent
    for tensor in _get_all_tensors(model):  # onnx's own walk: initializers and attributes of every subgraph
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        target = (folder / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ConfigError(
                f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, outside the model's "
                f"folder; external data must sit beside the model"
            )
        if not target.is_file():
            raise InputError(f"{path}: external data file not found: {folder / location} (tensor {tensor.name!r})")


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
    details = interpreter.get_input_details()
    detail = details[0]
    raw = [int(d) for d in detail["shape_signature"]]
    shape: list[int | None] = [None, *[None if d == -1 else d for d in raw[1:]]]
    output = interpreter.get_output_details()[0]
    output_shape = [None if int(d) == -1 else int(d) for d in output["shape_signature"]]
    output_width = flat_width(output_shape)
    quantized = any(
        t["dtype"].__name__ in ("int8", "uint8")
        for t in interpreter.get_tensor_details()
        if t["index"] not in (detail["index"],) and t["quantization_parameters"]["scales"].size
    )
    info = _image_info(
        path,
        "tflite",
        detail["name"],
        shape,
        detail["dtype"].__name__,
        output_width,
        quantized,
        dims=[str(d) for d in raw],
    )
    info.input_names = [d["name"] for d in details]
    info.output_name, info.output_shape = output["name"], output_shape
    return info
