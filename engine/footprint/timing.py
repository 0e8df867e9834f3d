"""Inference-time estimate: a per-op-kind cycle model of STM32Cube.AI's int8 kernels, and its float ones.

Each layer costs cycles on a Cortex-M7 (STM32H7/F7) according to its kind:

| kind | what costs | cycles |
|---|---|---|
| convolution (standard, 1x1, transposed) | per MACC | `CYCLES["conv"]` |
| depthwise convolution | per MACC | `CYCLES["depthwise"]` |
| dense (fully connected, matmul) | per MACC, i.e. per weight byte streamed from flash | `CYCLES["dense"]` |
| pooling, global pooling, mean and other reductions | per input element | `CYCLES["reduce"]` |
| element-wise ops, activations, softmax, (de)quantize, reshapes | not charged | 0 |

The coefficients were fitted (least squares on relative error, `benchmarks/fit_inference_time.py`)
on the published STM32H747I-DISCO times (400 MHz) of the shared model-zoo files and of
MobileNet v2 0.35 128 ImageNet (the one published model whose dense head is large enough to
identify the dense cost). Element-wise costs could not be told apart from the others on that
set: they are inside the per-MACC figures. The fit error is printed by that script (docs/benchmarks.md).

A layer that runs a float kernel (its activation input is floating point: a float model, or a layer
a mixed model keeps in float) costs `FLOAT_FACTOR` times its int8 cycles: the ratio of ST's published
STM32H747I-DISCO times of the float and the int8 ST MNIST v1 (the model zoo's stmnist README, STM32Cube.AI 7.3,
a model it times both ways on the same board), which `benchmarks/fit_inference_time.py` derives
and prints with the estimates of that model rebuilt in float and int8.

A board runs `cycles * CORE_FACTOR[core] / MHz`. The core factors are the cycle ratios of
STM32Cube.AI's own MLPerf Tiny v1.0 submissions (ResNet-8 and MobileNet v1 0.25 96 on
NUCLEO-H7A3ZI-Q, NUCLEO-U575ZI-Q and NUCLEO-L4R5ZI, X-CUBE-AI 7.1), averaged over the two models
(`CORE_FACTOR`). Cortex-M55 (STM32N6) is not modelled: its model-zoo figures run on the Neural-ART NPU.
"""

from __future__ import annotations

from engine.footprint.graph import Graph, Op

CYCLES = {"conv": 1.0402, "depthwise": 7.9535, "dense": 5.2472, "reduce": 30.1739}
CORE_FACTOR = {"Cortex-M7": 1.0, "Cortex-M33": 1.49, "Cortex-M4": 1.87}
FLOAT_FACTOR = 3.1  # a float kernel's cycles over the int8 one's (benchmarks/fit_inference_time.py)

CONVOLUTIONS = {"CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "Conv", "ConvTranspose"}
DENSE = {"FULLY_CONNECTED", "BATCH_MATMUL", "Gemm", "MatMul"}
REDUCTIONS = {
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "MEAN",
    "SUM",
    "REDUCE_MAX",
    "REDUCE_MIN",
    "REDUCE_PROD",
    "AveragePool",
    "MaxPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceMax",
    "ReduceSum",
}


def cost_kind(op: Op) -> str | None:
    """Which row of the cycle table an op falls in (None: not charged)."""
    if op.window is not None and op.window.depthwise:
        return "depthwise"
    if op.kind in CONVOLUTIONS:
        return "conv"
    if op.kind in DENSE:
        return "dense"
    return "reduce" if op.kind in REDUCTIONS else None


def cost_units(graph: Graph, op: Op) -> float:
    """What the op's kind is charged per: MACC, or input elements for reductions."""
    if cost_kind(op) == "reduce":
        return float(sum(graph.tensors[name].elements for name in op.inputs[:1]))
    return float(op.macc)


def runs_float(graph: Graph, op: Op) -> bool:
    """Whether the op runs a float kernel: its (first) activation input is floating point."""
    return bool(op.inputs) and graph.tensors[op.inputs[0]].floating


def layer_cycles(graph: Graph) -> list[int]:
    """Estimated Cortex-M7 cycles of every op of `graph`, in execution order."""
    cycles = []
    for op in graph.ops:
        kind = cost_kind(op)
        factor = FLOAT_FACTOR if runs_float(graph, op) else 1.0
        cycles.append(round(CYCLES[kind] * factor * cost_units(graph, op)) if kind else 0)
    return cycles


def inference_ms(cycles: int, core: str, mhz: float) -> float | None:
    """Milliseconds on a `core` clocked at `mhz`; None for a core the model does not cover."""
    factor = CORE_FACTOR.get(core)
    return None if factor is None else round(cycles * factor / (mhz * 1000), 2)
