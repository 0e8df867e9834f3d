"""Format-neutral graph that the footprint estimator plans: activation tensors, ops and their roles.

The .tflite and .onnx readers both lower a model to a `Graph`: the ops in execution order, each
with its MACC count and constant (weight) bytes already worked out, and only the activation tensors
(constants never enter the activation plan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

FLOAT_ITEMSIZE = 4


class Role(Enum):
    """How the code generator treats an op's output buffer."""

    COMPUTE = "compute"  # writes a fresh output buffer
    VIEW = "view"  # reshape-like: output is the input buffer reinterpreted, no copy
    PAD = "pad"  # zero padding: folded into the consuming convolution/pooling when legal
    ELEMENTWISE = "elementwise"  # may be computed in place over an input that dies here


@dataclass(frozen=True)
class Tensor:
    """An activation tensor as stored on target."""

    name: str
    shape: tuple[int, ...]
    itemsize: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.elements * self.itemsize

    @property
    def float_nbytes(self) -> int:
        return self.elements * FLOAT_ITEMSIZE


@dataclass(frozen=True)
class Window:
    """Vertical geometry of a sliding-window op (convolution, pooling): what the planner needs to
    know which input rows are still to be read once an output row is written."""

    kernel: int  # effective kernel height (dilation included)
    stride: int
    pad_top: int
    depthwise: bool = False


@dataclass
class Op:
    """One layer: activation inputs/outputs by tensor name, its MACC and its constant weights."""

    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    role: Role = Role.COMPUTE
    absorbs_padding: bool = False  # a convolution/pooling whose kernel can apply zero padding itself
    window: Window | None = None  # sliding-window ops: rows of input read per row of output
    macc: int = 0
    params: int = 0
    weight_bytes: int = 0


@dataclass
class Graph:
    """Ops in execution order plus the activation tensors they read and write."""

    ops: list[Op]
    tensors: dict[str, Tensor]
    inputs: list[str]
    outputs: list[str]
    height_axis: int = 1  # 1: NHWC (TFLite), 2: NCHW (ONNX); rows are slices along this axis
    consumers: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.consumers = {}
        for index, op in enumerate(self.ops):
            for name in op.inputs:
                self.consumers.setdefault(name, []).append(index)


def same_pad_top(in_size: int, out_size: int, kernel: int, stride: int) -> int:
    """Top (or left) padding of TensorFlow/ONNX SAME_UPPER padding: the smaller half."""
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2


def same_pad_top(in_size: int, out_size: int, kernel: int, stride: int) -> int:
    """Top (or left) padding of TensorFlow/ONNX SAME_UPPER padding: the smaller half."""
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2


def elements(shape: tuple[int, ...] | list[int]) -> int:
    """Element count of a shape (1 for a scalar)."""
    return math.prod(int(d) for d in shape) if len(shape) else 1
