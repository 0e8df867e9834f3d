"""Flash, RAM, MACC and inference time of an int8 (or float) .tflite / QDQ .onnx, as STM32Cube.AI
reports them.

A Keras .h5/.keras model is measured on its float32 TFLite conversion (TensorFlow needed).

Weights flash: the constant weights as stored (int8 kernels + int32 biases for an int8 model,
float32 for a float model); per-channel scales/zero points are not counted, as in X-CUBE-AI's
"weights (ro)". Float figures use 4 bytes per parameter.

Activation RAM: one arena holding every activation, inputs and outputs included (STM32Cube.AI's
default, the model zoo's `--allocate-inputs --allocate-outputs`), planned by
`engine.footprint.memory_planner` after STM32Cube.AI 8.1's rules (`ALLOCATOR`): padded copies for
depthwise convolutions, reshapes aliased, element-wise ops in place, sliding-window ops writing their
output over the input rows they no longer need, fused conv+pool, the int8 kernels' scratch, then
greedy packing by lifetime. `activation_ram_upper_kib` is the same plan with no overlap at all (what
ST Edge AI Core 4.0.1's generated code does): the two bound what a release needs. Float figures
replan the same graph at 4 bytes per activation element, without the int8 kernels' scratch.

MACC (X-CUBE-AI convention): convolution = out_h*out_w*out_c*k_h*k_w*in_c/groups; dense = in*out;
pooling = output size * window size; global pooling/mean = input size; reshape and pad = 0; every
other op (element-wise, activation, softmax, (de)quantize) = its output size.

Inference time: `engine.footprint.timing`'s per-op-kind cycle model (Cortex-M7 cycles per layer),
scaled to a board's core and clock (`engine.footprint.boards`); a layer that reads a float tensor (a float
model, or a layer a mixed model keeps float) runs a float kernel, `timing.FLOAT_FACTOR` times the int8 one.

Mixed float/int8 models: every tensor is planned at its own type's size (float32 4 bytes), QUANTIZE and
DEQUANTIZE ops (TFLite's, or a QDQ ONNX's around nodes left float) get their own buffers, float kernels
take no int8 scratch, and float weights count 4 bytes.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.common.errors import ConfigError
from engine.footprint.graph import Graph, Tensor
from engine.footprint.memory_planner import ALLOCATOR, MemoryPlan, plan_activations
from engine.footprint.timing import inference_ms, layer_cycles
from engine.models.files import KERAS_SUFFIXES, check_model_file
from engine.models.info import describe_model, require_image_classifier
from engine.models.library_internals import layer_of_node

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
class PeakHint:
    """What sets the activation RAM peak and what a smaller input would save (computed by replanning the
    graph with every feature map scaled to `smaller_input`)."""

    layer: int  # index in `Footprint.layers`
    buffers: str  # e.g. "input 64x64x8 + output 64x64x48 + scratch 0.50 KiB"
    input_size: int  # the model's input height (= width for a square input)
    smaller_input: int | None  # the next smaller input a network of this total stride takes
    saving_kib: float | None  # activation RAM saved at `smaller_input`

    def text(self) -> str:
        """One line for the table."""
        if self.smaller_input is None or self.saving_kib is None:
            return self.buffers
        return f"{self.buffers}: a {self.input_size} -> {self.smaller_input} input saves {self.saving_kib:.2f} KiB"


@dataclass(frozen=True)
class Footprint:
    """Whole-model figures (KiB rounded to 2 decimals like the X-CUBE-AI report) and per-layer rows.

    `activation_ram_kib` follows `allocator`'s rules; `activation_ram_upper_kib` gives every buffer its
    own bytes. `cycles_m7` is the board-independent estimate (Cortex-M7 cycles); `estimated_inference_ms`
    is the time on the board given to `estimate_footprint` (None without one, or for a core the
    timing model does not cover)."""

    weights_flash_kib: float
    activation_ram_kib: float
    activation_ram_upper_kib: float
    allocator: str
    macc: int
    params: int
    float_weights_kib: float
    float_activation_ram_kib: float
    cycles_m7: int
    estimated_inference_ms: float | None
    layers: list[LayerFootprint]
    peak: PeakHint | None = None

    def to_dict(self) -> dict[str, Any]:
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
            f"  upper bound   {self.activation_ram_upper_kib:10.2f} KiB   (no buffer written over another)",
            f"MACC            {self.macc / 1e6:10.3f} M",
            f"Params          {self.params:10d}",
            f"Cortex-M7 cycles{self.cycles_m7 / 1e6:10.2f} M (estimate)"
            + (
                f", {self.estimated_inference_ms:.2f} ms on the board"
                if self.estimated_inference_ms is not None
                else ""
            ),
            f"(activation RAM: {self.allocator}'s rules; inputs and outputs inside the activation buffer)",
            "",
            f"{'#':>3}  {'op':<18} {'output':<16} {'MACC':>11} {'weights B':>10} {'arena KiB':>9} {'time %':>6}  name",
        ]
        peak = self.peak.layer if self.peak else None
        for index, layer in enumerate(self.layers):
            shape = "x".join(str(d) for d in layer.output_shape)
            mark = "*" if index == peak else " "
            lines.append(
                f"{index:>3}  {layer.op[:18]:<18} {shape[:16]:<16} {layer.macc:>11} {layer.weight_bytes:>10} "
                f"{layer.live_activation_bytes / KIB:>8.2f}{mark} {layer.time_share_pct:>6.1f}  {layer.name[:48]}"
            )
        if self.peak:
            lines.append(f"* sets the activation RAM peak: {self.peak.text()}")
        return "\n".join(lines)


def _read_graph(model_path: Path) -> Graph:
    check_model_file(model_path)
    suffix = model_path.suffix.lower()
    if suffix not in (*KERAS_SUFFIXES, ".tflite", ".onnx"):
        raise ConfigError(f"footprint needs a .tflite, .onnx, .h5 or .keras model, not {model_path.name}")
    require_image_classifier(describe_model(model_path))  # no footprint of an input stquant cannot feed
    if suffix in KERAS_SUFFIXES:
        return _read_keras(model_path)
    if suffix == ".tflite":
        from engine.footprint.tflite import read_tflite

        return read_tflite(model_path)
    from engine.footprint.onnx import read_onnx

    return read_onnx(model_path)


def _read_keras(model_path: Path) -> Graph:
    """A Keras model's graph, from its float32 TFLite conversion (TensorFlow needed)."""
    import tempfile

    from engine.common.native_output import native_stderr_to
    from engine.footprint.tflite import read_tflite
    from engine.models.load import load_keras_model
    from engine.models.trace import float_tflite

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
    from engine.footprint.boards import BOARDS

    spec = next((b for b in BOARDS.values() if b.name.lower() == board.lower()), None)
    return inference_ms(cycles, spec.core, spec.mhz) if spec else None


def _dims(tensor: Tensor) -> str:
    """The dimensions without the batch (64x64x8), then " float" for a floating-point tensor."""
    return "x".join(str(d) for d in tensor.shape[1:]) + (" float" if tensor.floating else "")


def _alive_at_peak(graph: Graph, plan: MemoryPlan) -> tuple[int, str]:
    """The op whose step reaches the arena size, and the buffers alive then ("input 64x64x8 + output ...")."""
    step = next(s for s in range(len(plan.steps)) if _top(plan, s) == plan.arena_bytes)
    layer = plan.steps[step]
    op = graph.ops[layer]
    order = ("input", "padded copy", "output", "kept", "scratch")
    parts: list[tuple[int, str]] = []
    for buf in (b for b in plan.buffers if b.first <= step <= b.last):
        names = set(buf.tensors)
        if buf.tensors[0] not in plan.tensors:
            parts.append((4, f"scratch {buf.size / KIB:.2f} KiB"))
            continue
        role = (
            "output"
            if names & set(op.outputs)
            else "input"
            if names & set(op.inputs)
            else ("padded copy" if buf.tensors[0] not in graph.tensors else "kept")
        )
        parts.append((order.index(role), f"{role} {_dims(plan.tensors[buf.tensors[0]])}"))
    return layer, " + ".join(text for _, text in sorted(parts))


def _top(plan: MemoryPlan, step: int) -> int:
    return max((b.end for b in plan.buffers if b.first <= step <= b.last), default=0)


def _spatial(graph: Graph, name: str) -> tuple[int, int] | None:
    shape = graph.tensors[name].shape
    return (shape[graph.height_axis], shape[graph.height_axis + 1]) if len(shape) == 4 else None


def _smaller_input(graph: Graph) -> tuple[int, int] | None:
    """(input height, the next smaller height that is a multiple of the network's total stride), for a
    square image input; None otherwise."""
    size = _spatial(graph, graph.inputs[0]) if graph.inputs else None
    if size is None or size[0] != size[1]:
        return None
    smallest = min(s[0] for s in (_spatial(graph, name) for name in graph.tensors) if s is not None and s[0] > 1)
    stride = 2 ** max(int(math.log2(size[0] / smallest)), 0)
    smaller = (size[0] - 1) // stride * stride
    return (size[0], smaller) if smaller > 0 else None


def _scaled(graph: Graph, factor: float) -> Graph:
    """The same graph with every feature map's height and width scaled by `factor` (at least 1)."""
    axes = (graph.height_axis, graph.height_axis + 1)
    tensors = {
        name: replace(
            t, shape=tuple(max(1, round(d * factor)) if a in axes and d > 1 else d for a, d in enumerate(t.shape))
        )
        if len(t.shape) == 4
        else t
        for name, t in graph.tensors.items()
    }
    return Graph(graph.ops, tensors, graph.inputs, graph.outputs, graph.height_axis)


def _peak_hint(graph: Graph, plan: MemoryPlan) -> PeakHint | None:
    """The layer whose buffers reach the arena size, what they are, and the saving of a smaller input."""
    if not graph.ops or not plan.buffers:
        return None
    layer, buffers = _alive_at_peak(graph, plan)
    sizes = _smaller_input(graph)
    if sizes is None:
        return PeakHint(layer, buffers, 0, None, None)
    smaller = plan_activations(_scaled(graph, sizes[1] / sizes[0]), lambda t: t.nbytes).arena_bytes
    return PeakHint(layer, buffers, sizes[0], sizes[1], _kib(plan.arena_bytes - smaller))


def estimate_footprint(model_path: Path, board: str | None = None, keras3: bool = False) -> Footprint:
    """Estimate weights flash, activation RAM (with its upper bound), MACC and (with a known `board`)
    the inference time of a .tflite or .onnx model. Each layer is named after the model layer it implements
    (`engine.models.library_internals.layer_of_node`; `keras3`: converted from a Keras 3 model)."""
    model_path = Path(model_path)
    graph = _read_graph(model_path)
    plan = plan_activations(graph, lambda t: t.nbytes)
    upper = plan_activations(graph, lambda t: t.nbytes, overlap=False)
    float_plan = plan_activations(graph, lambda t: t.float_nbytes, scratch=False)
    params = sum(op.params for op in graph.ops)
    cycles = layer_cycles(graph)
    total_cycles = sum(cycles)
    empty = Tensor("", (), 0)
    layers = [
        LayerFootprint(
            op=op.kind,
            name=layer_of_node(op.name, keras3),
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
        activation_ram_upper_kib=_kib(upper.arena_bytes),
        allocator=ALLOCATOR,
        macc=sum(op.macc for op in graph.ops),
        params=params,
        float_weights_kib=_kib(params * 4),
        float_activation_ram_kib=_kib(float_plan.arena_bytes),
        cycles_m7=total_cycles,
        estimated_inference_ms=_board_ms(board, total_cycles),
        layers=layers,
        peak=_peak_hint(graph, plan),
    )
    log.debug(
        "footprint of %s: %s KiB weights, %s KiB activations",
        model_path,
        footprint.weights_flash_kib,
        footprint.activation_ram_kib,
    )
    return footprint
