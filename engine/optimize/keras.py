"""Data-free quantization (Nagel et al. 2019) of a functional Keras model before per-tensor int8.

Works on Keras 3 and tf_keras (Keras 2) functional models alike: the rewrite edits the model's
config (the same layer names, classes and `[layer, node, tensor]` references in both Kerases) and
rebuilds it with the Keras that made it. Steps, all on a copy of the model (the input model is left
untouched):

1. fold each BatchNormalization into the Conv2D/DepthwiseConv2D it solely follows;
2. cross-layer equalization (CLE) of every pair ``conv -> [ReLU/ReLU6/linear, ZeroPadding2D,
   Dropout]* -> conv`` where conv is a Conv2D or a DepthwiseConv2D and every link has a single
   consumer; pairs are swept until the scales converge, so chains (expand -> depthwise ->
   project) are balanced on both sides of the depthwise layer;
3. optional empirical bias correction from calibration batches.

Exactness: scaling output channel k of the first layer by 1/s_k commutes with ReLU but not with
ReLU6 (``min(relu(x/s), 6) != min(relu(x), 6)/s``). Every ReLU6 inside an equalized pair is
therefore replaced by a ``PerChannelClip`` layer, ``min(relu(x), c_k)`` with ``c_k = 6/s_k``, which
keeps steps 1-2 exactly equivalent in float.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from engine.common.errors import EngineError
from engine.models.library_internals import keras_of

log = logging.getLogger(__name__)

CONV_TYPES = ("Conv2D", "DepthwiseConv2D")
_LINK_TYPES = ("ReLU", "Activation", "ZeroPadding2D", "Dropout")
_MAX_SWEEPS = 100
_SCALE_TOLERANCE = 1e-4
_DEAD_WEIGHT = 1e-10


@functools.cache
def clip_layer_class(keras: Any) -> type:
    """The ``PerChannelClip`` layer class of one Keras package (``keras`` or ``tf_keras``)."""

    class PerChannelClip(keras.layers.Layer):  # type: ignore[misc]  # Keras is untyped: its Layer is Any
        """``min(relu(x), max_values)`` with one upper bound per channel (last axis)."""

        def __init__(self, max_values: Iterable[float], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.max_values = [float(v) for v in max_values]

        def call(self, inputs: tf.Tensor) -> tf.Tensor:
            bound = tf.constant(self.max_values, dtype=inputs.dtype)
            return tf.minimum(tf.nn.relu(inputs), bound)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "max_values": self.max_values}

    registered: type = keras.saving.register_keras_serializable(package="stquant")(PerChannelClip)
    return registered


PerChannelClip = clip_layer_class(tf_keras)


def functional(model: Any) -> Any:
    """`model` as a functional model of its own Keras (a Sequential one is wrapped), else EngineError."""
    keras = keras_of(model)
    if isinstance(model, keras.Sequential) and model.inputs:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        return keras.Model(inputs, model.outputs[0], name=model.name)
    try:
        config = model.get_config() if isinstance(model, keras.Model) else None
    except NotImplementedError:
        config = None
    if not config or "input_layers" not in config or "output_layers" not in config:
        raise EngineError(
            f"{getattr(model, 'name', type(model).__name__)} is not a functional Keras model "
            "(subclassed?): optimize and bias correction rewrite functional models only"
        )
    return model


@dataclass
class OptimizeReport:
    """What :func:`optimize_for_per_tensor` changed."""

    batchnorms_folded: list[str] = field(default_factory=list)
    pairs_equalized: list[tuple[str, str]] = field(default_factory=list)
    relu6_replaced: list[str] = field(default_factory=list)
    dead_channels_removed: int = 0
    biases_corrected: list[str] = field(default_factory=list)
    sweeps: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pairs_equalized"] = [list(p) for p in self.pairs_equalized]
        return data

    def summary(self) -> str:
        return (
            f"optimize: {len(self.batchnorms_folded)} BatchNorm folded, "
            f"{len(self.pairs_equalized)} layer pairs equalized ({self.sweeps} sweeps), "
            f"{len(self.relu6_replaced)} ReLU6 made per-channel, "
            f"{self.dead_channels_removed} dead channels removed, "
            f"{len(self.biases_corrected)} biases corrected"
        )


@dataclass
class _Pair:
    first: str
    second: str
    links: list[str]
    clips: list[str]


class _Graph:
    """The layer config list of a functional model, with weights by layer name."""

    def __init__(self, model: Any) -> None:
        model = functional(model)
        self.keras = keras_of(model)
        self.config = copy.deepcopy(model.get_config())
        self.layers = {entry["name"]: entry for entry in self.config["layers"]}
        self.weights = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}

    def inputs_of(self, name: str) -> list[str]:
        return [ref[0] for ref in _refs(self.layers[name]["inbound_nodes"])]

    def consumers_of(self, name: str) -> list[str]:
        found = [n for n in self.layers if name in self.inputs_of(n) for _ in range(self.inputs_of(n).count(name))]
        found += ["<output>" for ref in _refs(self.config["output_layers"]) if ref[0] == name]
        return found

    def kind(self, name: str) -> str:
        return str(self.layers[name]["class_name"])

    def single_use(self, name: str) -> bool:
        return len(self.layers[name]["inbound_nodes"]) <= 1 and len(self.consumers_of(name)) == 1

    def remove(self, name: str, replacement: str) -> None:
        """Drop layer *name* and rewire its consumers (and model outputs) to *replacement*."""
        self.config["layers"].remove(self.layers.pop(name))
        del self.weights[name]
        for entry in self.config["layers"]:
            _rename_refs(entry["inbound_nodes"], name, replacement)
        _rename_refs(self.config["output_layers"], name, replacement)

    def build(self) -> Any:
        model = self.keras.Model.from_config(
            self.config, custom_objects={"PerChannelClip": clip_layer_class(self.keras)}
        )
        for layer in model.layers:
            if self.weights.get(layer.name):
                layer.set_weights(self.weights[layer.name])
        return model


def _refs(node: Any) -> list[list[Any]]:
    """Every ``[layer_name, node_index, tensor_index, ...]`` reference nested in *node* (tf_keras
    ``inbound_nodes`` lists, Keras 3 ``keras_history`` inside ``args`` tuples)."""
    if isinstance(node, tuple):
        return [ref for item in node for ref in _refs(item)]
    if isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int) and isinstance(node[2], int):
            return [node]
        return [ref for item in node for ref in _refs(item)]
    if isinstance(node, dict):
        return [ref for item in node.values() for ref in _refs(item)]
    return []


def _rename_refs(node: Any, old: str, new: str) -> None:
    for ref in _refs(node):
        if ref[0] == old:
            ref[0] = new


def optimize_for_per_tensor(
    model: Any,
    *,
    bias_correction_data: Iterable[np.ndarray] | None = None,
) -> tuple[Any, OptimizeReport]:
    """Return an equivalent model whose weights and activations suit per-tensor int8, and a report.

    ``bias_correction_data``: float input batches (already preprocessed); when given, each
    conv/dense bias is corrected by the mean output shift that per-tensor int8 weights cause.
    """
    graph = _Graph(model)
    report = OptimizeReport()
    _fold_batchnorms(graph, report)
    pairs = _find_pairs(graph)
    _replace_relu6(graph, pairs, report)
    report.dead_channels_removed = _remove_dead_channels(graph, pairs)
    report.sweeps = _equalize(graph, pairs)
    report.pairs_equalized = [(p.first, p.second) for p in pairs]
    optimized = graph.build()
    if bias_correction_data is not None:
        report.biases_corrected = correct_biases(optimized, bias_correction_data)
    log.info(report.summary())
    return optimized, report


def _fold_batchnorms(graph: _Graph, report: OptimizeReport) -> None:
    """Fold BNs into the conv before them."""
    for name in [n for n in graph.layers if graph.kind(n) == "BatchNormalization"]:
        inputs = graph.inputs_of(name)
        if len(inputs) != 1 or len(graph.layers[name]["inbound_nodes"]) != 1:
            continue
        conv = inputs[0]
        if not _foldable_conv(graph, conv) or not graph.single_use(conv) or not _last_axis_bn(graph, name):
            continue
        bn_config = graph.layers[name]["config"]
        weights = list(graph.weights[name])
        gamma = weights.pop(0) if bn_config.get("scale", True) else None
        beta = weights.pop(0) if bn_config.get("center", True) else None
        mean, variance = weights
        gamma = np.ones_like(mean) if gamma is None else gamma
        beta = np.zeros_like(mean) if beta is None else beta
        scale = gamma / np.sqrt(variance + bn_config.get("epsilon", 1e-3))
        kernel, bias = _kernel_and_bias(graph, conv)
        kernel = kernel * _out_channel_view(graph, conv, scale)
        bias = (bias - mean) * scale + beta
        _set_kernel_and_bias(graph, conv, kernel, bias)
        graph.remove(name, conv)
        report.batchnorms_folded.append(name)


def _foldable_conv(graph: _Graph, name: str) -> bool:
    config = graph.layers[name]["config"]
    return (
        graph.kind(name) in CONV_TYPES
        and config.get("activation", "linear") == "linear"
        and config.get("data_format", "channels_last") == "channels_last"
        and len(graph.layers[name]["inbound_nodes"]) == 1
    )


def _last_axis_bn(graph: _Graph, name: str) -> bool:
    axis = graph.layers[name]["config"].get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    return axis in (-1, 3)


def _kernel_and_bias(graph: _Graph, name: str) -> tuple[np.ndarray, np.ndarray]:
    weights = graph.weights[name]
    kernel = weights[0].astype(np.float64)
    out_channels = kernel.shape[2] * kernel.shape[3] if graph.kind(name) == "DepthwiseConv2D" else kernel.shape[3]
    bias = weights[1].astype(np.float64) if len(weights) > 1 else np.zeros(out_channels)
    return kernel, bias


def _set_kernel_and_bias(graph: _Graph, name: str, kernel: np.ndarray, bias: np.ndarray) -> None:
    graph.layers[name]["config"]["use_bias"] = True
    graph.weights[name] = [kernel.astype(np.float32), bias.astype(np.float32)]


def _out_channel_view(graph: _Graph, name: str, per_channel: np.ndarray) -> np.ndarray:
    """Reshape a per-output-channel vector so that it broadcasts over the layer's kernel."""
    kernel = graph.weights[name][0]
    if graph.kind(name) == "DepthwiseConv2D":
        return per_channel.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    return per_channel.reshape(1, 1, 1, -1)


def _in_channel_view(graph: _Graph, name: str, per_channel: np.ndarray) -> np.ndarray:
    """Reshape a per-input-channel vector so that it broadcasts over the layer's kernel."""
    return per_channel.reshape(1, 1, -1, 1)


def _find_pairs(graph: _Graph) -> list[_Pair]:
    pairs = []
    for first in [n for n in graph.layers if _foldable_conv(graph, n) and _equalizable(graph, n)]:
        links: list[str] = []
        current = first
        while graph.single_use(current):
            nxt = graph.consumers_of(current)[0]
            if nxt == "<output>":
                break
            if graph.kind(nxt) in CONV_TYPES:
                if _equalizable(graph, nxt) and len(graph.inputs_of(nxt)) == 1:
                    clips = [n for n in links if _relu_max(graph, n) is not None]
                    pairs.append(_Pair(first, nxt, links, clips))
                break
            if not _neutral_link(graph, nxt):
                break
            links.append(nxt)
            current = nxt
    return pairs


def _equalizable(graph: _Graph, name: str) -> bool:
    config = graph.layers[name]["config"]
    if config.get("data_format", "channels_last") != "channels_last" or len(graph.layers[name]["inbound_nodes"]) != 1:
        return False
    if graph.kind(name) == "DepthwiseConv2D":
        return bool(config.get("depth_multiplier", 1) == 1)
    return bool(config.get("groups", 1) == 1)


def _relu_max(graph: _Graph, name: str) -> float | None:
    """The upper bound of a ReLU-like link (ReLU6: 6), None for unbounded or non-ReLU links."""
    config = graph.layers[name]["config"]
    if graph.kind(name) == "ReLU":
        max_value: float | None = config.get("max_value")
        return max_value
    if graph.kind(name) == "Activation" and config.get("activation") == "relu6":
        return 6.0
    return None


def _neutral_link(graph: _Graph, name: str) -> bool:
    """True for layers that commute with a positive per-channel scale."""
    config = graph.layers[name]["config"]
    kind = graph.kind(name)
    if kind == "ReLU":
        return not config.get("negative_slope") and not config.get("threshold")
    if kind == "Activation":
        return config.get("activation") in ("relu", "relu6", "linear")
    return kind in ("ZeroPadding2D", "Dropout")


def _replace_relu6(graph: _Graph, pairs: list[_Pair], report: OptimizeReport) -> None:
    for pair in pairs:
        channels = _kernel_and_bias(graph, pair.first)[1].size
        for name in pair.clips:
            bound = _relu_max(graph, name)
            entry = graph.layers[name]
            entry.pop("module", None)
            entry["class_name"] = "PerChannelClip"
            entry["registered_name"] = "stquant>PerChannelClip"
            entry["config"] = {
                "name": name,
                "trainable": entry["config"].get("trainable", True),
                "dtype": entry["config"].get("dtype", "float32"),
                "max_values": [bound] * channels,
            }
            report.relu6_replaced.append(name)


def _remove_dead_channels(graph: _Graph, pairs: list[_Pair]) -> int:
    """Cut channels whose first-layer weights are all ~0 from the second layer; return how many.

    Such a channel outputs the constant v = act(bias). The second layer's weights on it are
    zeroed and v is added to its bias (exact unless v != 0 and the second layer pads zeros).
    This removes the huge folded weights a BN with zero variance leaves on dead channels,
    which otherwise ruin the per-tensor range of the second layer.
    """
    removed = 0
    for pair in pairs:
        kernel, bias = _kernel_and_bias(graph, pair.first)
        axes = (0, 1, 2) if graph.kind(pair.first) == "Conv2D" else (0, 1)
        dead = np.abs(kernel).max(axis=axes).reshape(-1) < _DEAD_WEIGHT
        value = _through_links(graph, pair, bias)
        dead &= (value == 0) | (not _pads(graph, pair))
        second_kernel, second_bias = _kernel_and_bias(graph, pair.second)
        dead &= np.abs(second_kernel).max(axis=(0, 1, 3)) > 0
        if not dead.any():
            continue
        kernel[..., dead.reshape(kernel.shape[2:]) if graph.kind(pair.first) == "DepthwiseConv2D" else dead] = 0.0
        _set_kernel_and_bias(graph, pair.first, kernel, bias)
        constant = np.where(dead, value, 0.0)
        if graph.kind(pair.second) == "DepthwiseConv2D":
            second_bias = second_bias + second_kernel.sum(axis=(0, 1))[:, 0] * constant
        else:
            second_bias = second_bias + np.einsum("hwio,i->o", second_kernel, constant)
        second_kernel[:, :, dead, :] = 0.0
        _set_kernel_and_bias(graph, pair.second, second_kernel, second_bias)
        removed += int(dead.sum())
    return removed


def _through_links(graph: _Graph, pair: _Pair, values: np.ndarray) -> np.ndarray:
    """Per-channel constants of the first layer's output carried through the pair's links."""
    for name in pair.links:
        if graph.kind(name) == "PerChannelClip":
            values = np.minimum(np.maximum(values, 0.0), graph.layers[name]["config"]["max_values"])
        elif (bound := _relu_max(graph, name)) is not None:
            values = np.minimum(np.maximum(values, 0.0), bound)
        elif graph.kind(name) in ("ReLU", "Activation") and graph.layers[name]["config"].get("activation") != "linear":
            values = np.maximum(values, 0.0)
    return values


def _equalize(graph: _Graph, pairs: list[_Pair]) -> int:
    """Sweep CLE over all pairs until no channel scale moves by more than the tolerance."""
    for sweep in range(1, _MAX_SWEEPS + 1):
        largest = 0.0
        for pair in pairs:
            scale = _pair_scale(graph, pair)
            _apply_scale(graph, pair, scale)
            largest = max(largest, float(np.max(np.abs(np.log(scale)))))
        if largest < _SCALE_TOLERANCE:
            return sweep
    return _MAX_SWEEPS


def _pair_scale(graph: _Graph, pair: _Pair) -> np.ndarray:
    """s_k = sqrt(r1_k * r2_k) / r2_k, 1 where either range is zero."""
    first_kernel = _kernel_and_bias(graph, pair.first)[0]
    second_kernel = graph.weights[pair.second][0]
    r1 = (
        np.abs(first_kernel).max(axis=(0, 1, 2))
        if graph.kind(pair.first) == "Conv2D"
        else (np.abs(first_kernel).max(axis=(0, 1)).reshape(-1))
    )
    r2 = np.abs(second_kernel.astype(np.float64)).max(axis=(0, 1, 3))
    scale: np.ndarray = np.ones_like(r1)
    valid = (r1 > _DEAD_WEIGHT) & (r2 > _DEAD_WEIGHT)
    scale[valid] = np.sqrt(r1[valid] * r2[valid]) / r2[valid]
    return scale


def _apply_scale(graph: _Graph, pair: _Pair, scale: np.ndarray) -> None:
    kernel, bias = _kernel_and_bias(graph, pair.first)
    _set_kernel_and_bias(graph, pair.first, kernel / _out_channel_view(graph, pair.first, scale), bias / scale)
    second = graph.weights[pair.second]
    second[0] = (second[0] * _in_channel_view(graph, pair.second, scale)).astype(np.float32)
    for name in pair.clips:
        config = graph.layers[name]["config"]
        config["max_values"] = [float(v) for v in np.asarray(config["max_values"]) / scale]


def _pads(graph: _Graph, pair: _Pair) -> bool:
    """True when zeros are padded between the two layers (a shifted input would change the border)."""
    config = graph.layers[pair.second]["config"]
    kernel = graph.weights[pair.second][0]
    same_padding = config.get("padding") == "same" and kernel.shape[:2] != (1, 1)
    return same_padding or any(graph.kind(n) == "ZeroPadding2D" for n in pair.links)


def correct_biases(model: Any, batches: Iterable[np.ndarray], per_channel: bool = False) -> list[str]:
    """Subtract from each Conv2D/DepthwiseConv2D/Dense bias the mean output shift of int8 weights.

    Weights are quantized symmetric (scale max|W|/127) per tensor, as the TFLite converter does
    with per-channel disabled, or per output channel (``per_channel``); the shift is measured on
    the float inputs of each layer. ``model``: a functional Keras 3 or tf_keras model, changed in place.
    Returns the names of the corrected layers.
    """
    keras = keras_of(model)
    calls = {entry["name"]: len(entry["inbound_nodes"]) for entry in functional(model).get_config()["layers"]}
    targets = [
        layer
        for layer in model.layers
        if type(layer).__name__ in (*CONV_TYPES, "Dense")
        and calls.get(layer.name) == 1
        and layer.get_config().get("use_bias")
        and layer.get_config().get("groups", 1) == 1
    ]
    if not targets:
        return []
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with one array below
    probe = keras.Model(inputs, [layer.input for layer in targets])
    sums: list[np.ndarray | None] = [None] * len(targets)
    count = 0
    for batch in batches:
        layer_inputs = probe(np.asarray(batch, dtype=np.float32), training=False)
        layer_inputs = layer_inputs if isinstance(layer_inputs, (list, tuple)) else [layer_inputs]
        for i, (layer, x) in enumerate(zip(targets, layer_inputs)):
            shift = _weight_error_output(layer, x, per_channel)
            sums[i] = shift if sums[i] is None else sums[i] + shift
        count += int(np.asarray(batch).shape[0])
    if count == 0:
        raise EngineError("bias correction needs at least one calibration batch")
    for layer, total in zip(targets, sums):
        assert total is not None  # count > 0: every target has a sum
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, (bias - total / count).astype(np.float32)])
    return [layer.name for layer in targets]


def _weight_error_output(layer: Any, x: tf.Tensor, per_channel: bool) -> np.ndarray:
    """Sum over the batch of the per-channel mean of layer(x) computed with (W_int8 - W) and no bias."""
    kind = type(layer).__name__
    kernel = layer.get_weights()[0]
    quantized = (
        quantize_per_channel(kernel, depthwise=kind == "DepthwiseConv2D")
        if per_channel
        else quantize_per_tensor(kernel)
    )
    error = tf.constant(quantized - kernel)
    config = layer.get_config()
    if kind == "Dense":
        out = tf.matmul(x, error)
    elif kind == "DepthwiseConv2D":
        out = tf.nn.depthwise_conv2d(
            x, error, (1, *config["strides"], 1), config["padding"].upper(), dilations=config["dilation_rate"]
        )
    else:
        out = tf.nn.conv2d(x, error, config["strides"], config["padding"].upper(), dilations=config["dilation_rate"])
    axes = tuple(range(1, len(out.shape) - 1))
    per_sample = tf.reduce_mean(out, axis=axes) if axes else out
    shifts: np.ndarray = tf.reduce_sum(per_sample, axis=0).numpy().reshape(-1)
    return shifts


def quantize_per_tensor(weights: np.ndarray) -> np.ndarray:
    """Symmetric per-tensor int8 fake quantization (scale max|W|/127), returned as float."""
    peak = float(np.max(np.abs(weights)))
    if peak == 0.0:
        return weights.copy()
    scale = peak / 127.0
    return (np.clip(np.round(weights / scale), -127, 127) * scale).astype(weights.dtype)


def quantize_per_channel(weights: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """Symmetric int8 fake quantization per output channel (last axis; axis 2 for depthwise kernels)."""
    axis = 2 if depthwise else weights.ndim - 1
    moved = np.moveaxis(weights, axis, 0)
    return np.moveaxis(np.stack([quantize_per_tensor(channel) for channel in moved]), 0, axis)
