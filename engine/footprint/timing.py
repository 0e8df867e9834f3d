"""Inference-time estimate: a per-op-kind cycle model of STM32Cube.AI's int8 kernels.

Each layer costs cycles on a Cortex-M7 (STM32H7/F7) according to its kind:

| kind | what costs | cycles |
|---|---|---|
| convolution (standard, 1x1, transposed) | per MACC | `CYCLES["conv"]` |
| depthwise convolution | per MACC | `CYCLES["depthwise"]` |
| dense (fully connected, matmul) | per MACC, i.e. per weight byte streamed from flash | `CYCLES["dense"]` |
| pooling, global pooling, mean and other reductions | per input element | `CYCLES["reduce"]` |
| element-wise ops, activations, softmax, (de)quantize, reshapes | not charged | 0 |

The coefficients were fitted (least squares on relative error, `benchmarks/fit_inference_time.py`)
on the published STM32H747I-DISCO times (400 MHz) of the six shared model-zoo files and of
MobileNet v2 0.35 128 ImageNet (the one published model whose dense head is large enough to
identify the dense cost). Element-wise costs could not be told apart from the others on that
set: they are inside the per-MACC figures. The fit error is printed by that script (docs/benchmarks.md).

A board runs `cycles * CORE_FACTOR[core] / MHz`. The core factors are the cycle ratios of
STM32Cube.AI's own MLPerf Tiny v1.0 submissions (ResNet-8 and MobileNet v1 0.25 96 on
NUCLEO-H7A3ZI-Q, NUCLEO-U575ZI-Q and NUCLEO-L4R5ZI, X-CUBE-AI 7.1), averaged over the two models
(`CORE_FACTOR`). Cortex-M55 (STM32N6) is not modelled: its model-zoo figures run on the Neural-ART NPU.
"""

from __future__ import annotations

from engine.footprint.graph import Graph, Op

CYCLES = {"conv": 1.0393, "depthwise": 7.9467, "dense": 5.2707, "reduce": 30.3342}
CORE_FACTOR = {"Cortex-M7": 1.0, "Cortex-M33": 1.49, "Cortex-M4": 1.87}

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


def layer_cycles(graph: Graph) -> list[int]:
    """Estimated Cortex-M7 cycles of every op of `graph`, in execution order."""
    cycles = []
    for op in graph.ops:
        kind = cost_kind(op)
        cycles.append(round(CYCLES[kind] * cost_units(graph, op)) if kind else 0)
    return cycles


def inference_ms(cycles: int, core: str, mhz: float) -> float | None:
    """Milliseconds on a `core` clocked at `mhz`; None for a core the model does not cover."""
    factor = CORE_FACTOR.get(core)
    return None if factor is None else round(cycles * factor / (mhz * 1000), 2)
