"""Flash, RAM, MACC and inference time of an int8 (or float) .tflite / QDQ .onnx, as STM32Cube.AI
10 reports them.

A Keras .h5/.keras model is measured on its float32 TFLite conversion (TensorFlow needed).

Weights flash: the constant weights as stored (int8 kernels + int32 biases for an int8 model,
float32 for a float model); per-channel scales/zero points are not counted, as in X-CUBE-AI's
"weights (ro)". Float figures use 4 bytes per parameter.

Activation RAM: one arena holding every activation, inputs and outputs included (STM32Cube.AI's
default, the model zoo's `--allocate-inputs --allocate-outputs`), planned by
`engine.footprint.memory_planner`: PADs folded into the convolution/pooling that reads them,
reshapes aliased, element-wise ops in place, shrinking convolutions and poolings writing their
output over the input rows they no longer need, the int8 scratch buffer of each standard
convolution during that layer, then greedy packing by lifetime. Float figures replan the same
graph at 4 bytes per activation element, without the int8 kernels' scratch.

MACC (X-CUBE-AI convention): convolution = out_h*out_w*out_c*k_h*k_w*in_c/groups; dense = in*out;
pooling = output size * window size; global pooling/mean = input size; reshape and pad = 0; every
other op (element-wise, activation, softmax, (de)quantize) = its output size.

Inference time: `engine.footprint.timing`'s per-op-kind cycle model (Cortex-M7 cycles per layer),
scaled to a board's core and clock (`engine.boards`), for the int8 deployment of the graph.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import ConfigError
from engine.footprint.graph import Graph, Tensor
from engine.footprint.memory_planner import plan_activations
from engine.footprint.timing import inference_ms, layer_cycles
from engine.models import KERAS_SUFFIXES, check_model_file

log = logging.getLogger(__name__)

KIB = 1024


@dataclass(frozen=True)
class LayerFootprint:
    """One op: its MACC, the weight bytes it reads, the activation arena it needs (bytes up to the
    highest buffer alive while it runs), its estimated Cortex-M7 cycles and their share."""

    op: str
    name: str
    output_shape: tuple[int, ...]
    macc: int
    weight_bytes: int
    live_activation_bytes: int
    cycles: int
    time_share_pct: float


@dataclass(frozen=True)
class Footprint:
    """Whole-model figures (KiB rounded to 2 decimals like the X-CUBE-AI report) and per-layer rows.

    `cycles_m7` is the board-independent estimate (Cortex-M7 cycles); `estimated_inference_ms`
    is the time on the board given to `estimate_footprint` (None without one, or for a core the
    timing model does not cover)."""

    weights_flash_kib: float
    activation_ram_kib: float
    macc: int
    params: int
    float_weights_kib: float
    float_activation_ram_kib: float
    cycles_m7: int
    estimated_inference_ms: float | None
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
            f"Cortex-M7 cycles{self.cycles_m7 / 1e6:10.2f} M (estimate)"
            + (f", {self.estimated_inference_ms:.2f} ms on the board" if self.estimated_inference_ms is not None else ""),
            "(STM32Cube.AI 10 conventions: inputs and outputs inside the activation buffer)",
            "",
            f"{'#':>3}  {'op':<18} {'output':<16} {'MACC':>11} {'weights B':>10} {'arena KiB':>9} {'time %':>6}  name",
        ]
        peak = max(self.layers, key=lambda layer: layer.live_activation_bytes, default=None)
        for index, layer in enumerate(self.layers):
            shape = "x".join(str(d) for d in layer.output_shape)
            mark = "*" if layer is peak else " "
            lines.append(
                f"{index:>3}  {layer.op[:18]:<18} {shape[:16]:<16} {layer.macc:>11} {layer.weight_bytes:>10} "
                f"{layer.live_activation_bytes / KIB:>8.2f}{mark} {layer.time_share_pct:>6.1f}  {layer.name[:48]}"
            )
        lines.append("* sets the activation RAM peak")
        return "\n".join(lines)


def _read_graph(model_path: Path) -> Graph:
    check_model_file(model_path)
    suffix = model_path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return _read_keras(model_path)
    if suffix not in (".tflite", ".onnx"):
        raise ConfigError(f"footprint needs a .tflite, .onnx, .h5 or .keras model, not {model_path.name}")
    if suffix == ".tflite":
        from engine.footprint.tflite import read_tflite

        return read_tflite(model_path)
    from engine.footprint.onnx import read_onnx

    return read_onnx(model_path)


def _read_keras(model_path: Path) -> Graph:
    """A Keras model's graph, from its float32 TFLite conversion (TensorFlow needed)."""
    import tempfile

    from engine.footprint.tflite import read_tflite
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


def _board_ms(board: str | None, cycles: int) -> float | None:
    if not board:
        return None
    from engine.boards import BOARDS

    spec = next((b for b in BOARDS.values() if b.name.lower() == board.lower()), None)
    return inference_ms(cycles, spec.core, spec.mhz) if spec else None


def estimate_footprint(model_path: Path, board: str | None = None) -> Footprint:
    """Estimate weights flash, activation RAM, MACC and (with a known `board`) the inference time
    of a .tflite or .onnx model."""
    model_path = Path(model_path)
    graph = _read_graph(model_path)
    plan = plan_activations(graph, lambda t: t.nbytes)
    float_plan = plan_activations(graph, lambda t: t.float_nbytes, scratch=False)
    params = sum(op.params for op in graph.ops)
    cycles = layer_cycles(graph)
    total_cycles = sum(cycles)
    empty = Tensor("", (), 0)
    layers = [
        LayerFootprint(
            op=op.kind,
            name=op.name,
            output_shape=graph.tensors.get(op.outputs[0] if op.outputs else "", empty).shape,
            macc=op.macc,
            weight_bytes=op.weight_bytes,
            live_activation_bytes=plan.live_bytes[index],
            cycles=cycles[index],
            time_share_pct=round(100 * cycles[index] / total_cycles, 2) if total_cycles else 0.0,
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
        cycles_m7=total_cycles,
        estimated_inference_ms=_board_ms(board, total_cycles),
        layers=layers,
    )
    log.debug("footprint of %s: %s KiB weights, %s KiB activations", model_path,
              footprint.weights_flash_kib, footprint.activation_ram_kib)
    return footprint
