"""Flash, RAM and MACC of an int8 (or float) .tflite / QDQ .onnx, as STM32Cube.AI reports them.

A Keras .h5/.keras model is measured on its float32 TFLite conversion (TensorFlow needed).

Weights flash: the constant weights as stored (int8 kernels + int32 biases for an int8 model,
float32 for a float model); per-channel scales/zero points are not counted, as in X-CUBE-AI's
"weights (ro)". Float figures use 4 bytes per parameter.

Activation RAM: one arena holding every activation, inputs and outputs included (the model zoo's
`--allocate-inputs --allocate-outputs`), planned by `engine.memory_planner`: PADs folded into the
convolution/pooling that reads them, reshapes aliased, element-wise ops in place over an input that
dies there, then TFLM-style greedy packing by lifetime (largest first, first fitting gap). Float
figures replan the same graph at 4 bytes per activation element. Kernel scratch buffers are not
modelled, so small models whose first convolution needs a large im2col scratch may read low.

MACC (X-CUBE-AI convention): convolution = out_h*out_w*out_c*k_h*k_w*in_c/groups; dense = in*out;
pooling = output size * window size; global pooling/mean = input size; reshape and pad = 0; every
other op (element-wise, activation, softmax, (de)quantize) = its output size.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import ConfigError
from engine.footprint_graph import Graph, Tensor
from engine.memory_planner import plan_activations
from engine.models import check_model_file

log = logging.getLogger(__name__)

KIB = 1024


@dataclass(frozen=True)
class LayerFootprint:
    """One op: its MACC, the weight bytes it reads and the activation bytes live while it runs."""

    op: str
    name: str
    output_shape: tuple[int, ...]
    macc: int
    weight_bytes: int
    live_activation_bytes: int


@dataclass(frozen=True)
class Footprint:
    """Whole-model figures (KiB rounded to 2 decimals like the X-CUBE-AI report) and per-layer rows."""

    weights_flash_kib: float
    activation_ram_kib: float
    macc: int
    params: int
    float_weights_kib: float
    float_activation_ram_kib: float
    layers: list[LayerFootprint]

    def to_dict(self) -> dict:
        """JSON-ready dictionary (shapes as lists)."""
        data = asdict(self)
        for layer in data["layers"]:
            layer["output_shape"] = list(layer["output_shape"])
        return data

    def format_table(self) -> str:
        """Compact summary followed by a per-layer table."""
        def saving(quantized: float, floating: float) -> str:
            return f" ({floating / quantized:.1f}x smaller than float)" if 0 < quantized < floating else ""

        lines = [
            f"Weights flash   {self.weights_flash_kib:10.2f} KiB   float32 {self.float_weights_kib:.2f} KiB"
            + saving(self.weights_flash_kib, self.float_weights_kib),
            f"Activation RAM  {self.activation_ram_kib:10.2f} KiB   float32 {self.float_activation_ram_kib:.2f} KiB"
            + saving(self.activation_ram_kib, self.float_activation_ram_kib),
            f"MACC            {self.macc / 1e6:10.3f} M",
            f"Params          {self.params:10d}",
            "",
            f"{'#':>3}  {'op':<18} {'output':<16} {'MACC':>11} {'weights B':>10} {'live KiB':>9}  name",
        ]
        for index, layer in enumerate(self.layers):
            shape = "x".join(str(d) for d in layer.output_shape)
            lines.append(
                f"{index:>3}  {layer.op[:18]:<18} {shape[:16]:<16} {layer.macc:>11} "
                f"{layer.weight_bytes:>10} {layer.live_activation_bytes / KIB:>9.2f}  {layer.name[:48]}"
            )
        return "\n".join(lines)


KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def _read_graph(model_path: Path) -> Graph:
    check_model_file(model_path)
    suffix = model_path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return _read_keras(model_path)
    if suffix not in (".tflite", ".onnx"):
        raise ConfigError(f"footprint needs a .tflite, .onnx, .h5 or .keras model, not {model_path.name}")
    if suffix == ".tflite":
        from engine.footprint_tflite import read_tflite

        return read_tflite(model_path)
    from engine.footprint_onnx import read_onnx

    return read_onnx(model_path)


def _read_keras(model_path: Path) -> Graph:
    """A Keras model's graph, from its float32 TFLite conversion (TensorFlow needed)."""
    import tempfile

    from engine.footprint_tflite import read_tflite
    from engine.keras_trace import float_tflite
    from engine.models import load_keras_model
    from engine.native_output import native_stderr_to

    with native_stderr_to(Path(os.devnull)):  # TensorFlow's C++ start-up lines
        content = float_tflite(load_keras_model(model_path))
    with tempfile.TemporaryDirectory(prefix="stquant-footprint-") as folder:
        converted = Path(folder) / f"{model_path.stem}.tflite"
        converted.write_bytes(content)
        return read_tflite(converted)


def _kib(nbytes: int) -> float:
    return round(nbytes / KIB, 2)


def estimate_footprint(model_path: Path) -> Footprint:
    """Estimate weights flash, activation RAM and MACC of a .tflite or .onnx model."""
    model_path = Path(model_path)
    graph = _read_graph(model_path)
    plan = plan_activations(graph, lambda t: t.nbytes)
    float_plan = plan_activations(graph, lambda t: t.float_nbytes)
    params = sum(op.params for op in graph.ops)
    empty = Tensor("", (), 0)
    layers = [
        LayerFootprint(
            op=op.kind,
            name=op.name,
            output_shape=graph.tensors.get(op.outputs[0] if op.outputs else "", empty).shape,
            macc=op.macc,
            weight_bytes=op.weight_bytes,
            live_activation_bytes=plan.live_bytes[index],
        )
        for index, op in enumerate(graph.ops)
    ]
    footprint = Footprint(
        weights_flash_kib=_kib(sum(op.weight_bytes for op in graph.ops)),
        activation_ram_kib=_kib(plan.arena_bytes),
        macc=sum(op.macc for op in graph.ops),
        params=params,
        float_weights_kib=_kib(params * 4),
        float_activation_ram_kib=_kib(float_plan.arena_bytes),
        layers=layers,
    )
    log.debug("footprint of %s: %s KiB weights, %s KiB activations", model_path,
              footprint.weights_flash_kib, footprint.activation_ram_kib)
    return footprint
