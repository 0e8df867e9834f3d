"""Lower an ONNX model (float or QDQ) to a footprint `Graph`.

QDQ conventions: a DequantizeLinear of an initializer is a stored weight (counted at its quantized
size; scales and zero points are not counted). A node runs int8 when every activation input comes out of a
DequantizeLinear and every output goes only into QuantizeLinear (the QDQ node unit), its weights quantized;
the Q after it and the DQ before it are then no ops on target: the tensor before Q, after Q and after DQ is
one int8 buffer. Every other node runs float (a node left out of quantization, `nodes_to_exclude`): a DQ
feeding it is a real DEQUANTIZE op with a float output buffer, and a Q of its output a real QUANTIZE op (like
TFLite's QUANTIZE/DEQUANTIZE; so are a Q fed by a graph input and a DQ producing a graph output). int64
constants (shapes, axes, pads) are code parameters, not weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from engine.common.errors import EngineError, InputError, first_line
from engine.footprint.graph import (
    Graph,
    Op,
    Role,
    Tensor,
    Window,
    conv_scratch_bytes,
    depthwise_scratch_bytes,
    elements,
    same_pad_top,
)

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "PRelu", "InstanceNormalization"}
VIEWS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
PADS = {"Pad"}
ELEMENTWISE = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Max",
    "Min",
    "Relu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "HardSigmoid",
    "LeakyRelu",
    "PRelu",
    "BatchNormalization",
    "QuantizeLinear",
    "DequantizeLinear",
}
ABSORB_PADDING = {"Conv", "AveragePool", "MaxPool"}
GLOBAL_REDUCTIONS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum"}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_MATRIX_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def _load(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ValidationError...
        raise InputError(f"cannot read ONNX model {path}: {first_line(exc)}") from exc
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise EngineError(f"ONNX shape inference failed on {path}: {exc}") from exc


def _dims(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(max(d.dim_value, 1) for d in value.type.tensor_type.shape.dim)


def _itemsize(elem_type: int) -> int:
    return helper.tensor_dtype_to_np_dtype(elem_type).itemsize


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


class _Reader:
    """Walks the nodes once, resolving QDQ node units, constants and activation tensors."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.graph = g
        self.values = {v.name: v for v in (*g.input, *g.value_info, *g.output)}
        self.consts: dict[str, tuple[tuple[int, ...], int]] = {
            init.name: (tuple(init.dims), init.data_type) for init in g.initializer
        }
        self.graph_inputs = [v.name for v in g.input if v.name not in self.consts]
        self.graph_outputs = [v.name for v in g.output]
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in g.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.alias: dict[str, str] = {}
        self.dequantized: dict[str, tuple[str, str]] = {}  # activation DQ output -> (int8 tensor it reads, DQ name)
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def activation(self, name: str, itemsize: int | None = None) -> str:
        """Register an activation tensor (stored with `itemsize` bytes, default its own type); return its key."""
        key = self.resolve(name)
        if key in self.tensors:
            return key
        value = self.values.get(name) or self.values.get(key)
        if value is None:
            raise EngineError(f"ONNX tensor {name!r} has no inferred shape")
        elem_type = value.type.tensor_type.elem_type
        floating = itemsize is None and elem_type in _FLOATS
        self.tensors[key] = Tensor(key, _dims(value), itemsize or _itemsize(elem_type), floating)
        return key

    def _constant_node(self, node: onnx.NodeProto) -> bool:
        if node.op_type == "Constant":
            value = _attr(node, "value")
            if value is not None:
                self.consts[node.output[0]] = (tuple(value.dims), value.data_type)
            return True
        if node.op_type in _QDQ and node.input[0] in self.consts:
            dims, dtype = self.consts[node.input[0]]
            if node.op_type == "QuantizeLinear":
                dtype = _attr(node, "output_dtype") or (
                    self.consts[node.input[2]][1] if len(node.input) > 2 and node.input[2] else TensorProto.UINT8
                )
            self.consts[node.output[0]] = (dims, dtype)
            return True
        return False

    def _folded_qdq(self, node: onnx.NodeProto) -> bool:
        """Fold an activation Q of an int8 tensor into it, and record an activation DQ (made a real op only
        for a float reader, `_input`); a DQ producing a graph output and a Q of a float tensor stay ops."""
        src, out = node.input[0], node.output[0]
        if node.op_type == "DequantizeLinear" and out not in self.graph_outputs:
            source = self.dequantized[src][0] if src in self.dequantized else self.resolve(src)
            self.dequantized[out] = (source, node.name or out)
            return True
        if node.op_type == "QuantizeLinear":
            if src in self.dequantized:  # DQ -> Q: the int8 tensor again
                self.alias[out] = self.dequantized[src][0]
                return True
            if not self.tensors[self.activation(src)].floating:  # written int8 by a QDQ node unit
                self.alias[out] = self.resolve(src)
                return True
        return False

    def _int8_node(self, node: onnx.NodeProto) -> bool:
        """Whether `node` is a QDQ node unit: every activation input dequantized, every used output quantized,
        and, for a convolution or matrix product, quantized weights (ONNX Runtime's quantizer wraps a node it
        was told to leave out in the Q/DQ of its neighbours, but leaves its weights float)."""
        inputs = [name for name in node.input if name and name not in self.consts]
        used = [name for name in node.output if name and (name in self.consumers or name in self.graph_outputs)]
        float_weights = node.op_type in _MATRIX_OPS and any(
            self.consts[name][1] in _FLOATS for name in node.input if name in self.consts
        )
        return (
            node.op_type not in _QDQ
            and not float_weights
            and bool(inputs)
            and bool(used)
            and all(name in self.dequantized for name in inputs)
            and all(
                name not in self.graph_outputs and all(c.op_type == "QuantizeLinear" for c in self.consumers[name])
                for name in used
            )
        )

    def _quantized_itemsize(self, name: str) -> int:
        """Item size of the QuantizeLinear output that stores `name` (int8 unless it says otherwise)."""
        out = next((c.output[0] for c in self.consumers.get(name, []) if c.op_type == "QuantizeLinear"), "")
        return _itemsize(self.values[out].type.tensor_type.elem_type) if out in self.values else 1

    def _input(self, name: str, int8: bool) -> str:
        """The tensor a node reads: a dequantized tensor's int8 source for an int8 node; for a float node, the
        output of a real DEQUANTIZE op (added once, before its first float reader)."""
        if name not in self.dequantized:
            return self.activation(name)
        source, node_name = self.dequantized[name]
        if int8:
            return source
        if name not in self.tensors:
            key = self.activation(name)
            macc = self.tensors[key].elements
            self.ops.append(Op("DequantizeLinear", node_name, [source], [key], role=Role.ELEMENTWISE, macc=macc))
        return name

    def _weights(self, node: onnx.NodeProto) -> tuple[int, int, list[tuple[int, ...]]]:
        params = weight_bytes = 0
        const_shapes = []
        for slot, name in enumerate(node.input):
            if name not in self.consts:
                continue
            dims, dtype = self.consts[name]
            const_shapes.append(dims)
            counted = node.op_type in WEIGHTED and node.op_type not in _QDQ
            counted |= node.op_type in ELEMENTWISE and elements(dims) > 1 and node.op_type not in _QDQ
            if counted and dtype != TensorProto.INT64 and not (node.op_type == "Clip" and slot > 0):
                params += elements(dims)
                weight_bytes += elements(dims) * _itemsize(dtype)
        return params, weight_bytes, const_shapes

    def _macc(self, node: onnx.NodeProto, ins: list[str], out: tuple[int, ...], consts: list[tuple[int, ...]]) -> int:
        kind, out_n = node.op_type, elements(out)
        if kind == "Conv" and consts:
            return out_n * elements(consts[0][1:])
        if kind == "ConvTranspose" and consts:
            return elements(self.tensors[ins[0]].shape) * elements(consts[0][1:])
        if kind in ("Gemm", "MatMul"):
            a = self.tensors[ins[0]].shape if ins else consts[0]
            return out_n * (a[0] if kind == "Gemm" and _attr(node, "transA", 0) else a[-1])
        if kind in ("AveragePool", "MaxPool"):
            return out_n * elements(_attr(node, "kernel_shape", []))
        if kind in GLOBAL_REDUCTIONS and ins:
            return elements(self.tensors[ins[0]].shape)
        return 0 if kind in VIEWS or kind in PADS else out_n

    def _window(
        self, node: onnx.NodeProto, ins: list[str], out: tuple[int, ...], consts: list[tuple[int, ...]]
    ) -> Window | None:
        """Kernel height, stride and top padding of a 2-D Conv or pooling (NCHW)."""
        if node.op_type not in ABSORB_PADDING or not ins or len(out) != 4:
            return None
        kernel_shape = _attr(node, "kernel_shape") or (consts[0][2:] if consts else None)
        if not kernel_shape or len(kernel_shape) != 2:
            return None
        dilations, strides = _attr(node, "dilations") or [1, 1], _attr(node, "strides") or [1, 1]
        kernel = (kernel_shape[0] - 1) * dilations[0] + 1
        kernel_w = (kernel_shape[1] - 1) * dilations[-1] + 1
        stride = strides[0]
        auto_pad = _attr(node, "auto_pad", b"NOTSET")
        if auto_pad in (b"SAME_UPPER", b"SAME_LOWER"):
            pad = same_pad_top(self.tensors[ins[0]].shape[2], out[2], kernel, stride)
        else:
            pad = (_attr(node, "pads") or [0])[0]
        return Window(kernel, stride, pad, (_attr(node, "group") or 1) > 1, kernel_w, strides[-1])

    def _scratch(self, node: onnx.NodeProto, ins: list[str], consts: list[tuple[int, ...]]) -> int:
        """Int8 kernel scratch of a 2-D Conv on 8-bit input (`conv_scratch_bytes`; grouped:
        `depthwise_scratch_bytes`), else 0."""
        if node.op_type != "Conv" or not consts or len(consts[0]) != 4:
            return 0
        if not ins or self.tensors[ins[0]].itemsize != 1:
            return 0
        out_c, in_c, kh, kw = consts[0]
        if (_attr(node, "group") or 1) > 1:
            return depthwise_scratch_bytes(out_c)
        pointwise = kh == kw == 1 and all(s == 1 for s in (_attr(node, "strides") or [1]))
        return conv_scratch_bytes(in_c, kh * kw, out_c, pointwise)

    def read(self) -> Graph:
        inputs = [self.activation(name) for name in self.graph_inputs]
        for node in self.graph.node:
            if self._constant_node(node) or (node.op_type in _QDQ and self._folded_qdq(node)):
                continue
            int8 = self._int8_node(node)
            act_in = [self._input(n, int8) for n in node.input if n and n not in self.consts]
            outs = [self.activation(n, self._quantized_itemsize(n) if int8 else None) for n in node.output if n]
            params, weight_bytes, consts = self._weights(node)
            out_shape = self.tensors[outs[0]].shape if outs else ()
            kind = node.op_type
            role = (
                Role.VIEW
                if kind in VIEWS
                else Role.PAD
                if kind in PADS
                else (Role.ELEMENTWISE if kind in ELEMENTWISE else Role.COMPUTE)
            )
            self.ops.append(
                Op(
                    kind=kind,
                    name=node.name or (node.output[0] if node.output else kind),
                    inputs=act_in,
                    outputs=outs,
                    role=role,
                    absorbs_padding=kind in ABSORB_PADDING,
                    window=self._window(node, act_in, out_shape, consts),
                    macc=self._macc(node, act_in, out_shape, consts),
                    params=params,
                    weight_bytes=weight_bytes,
                    scratch_bytes=self._scratch(node, act_in, consts),
                )
            )
        outputs = [self.resolve(name) for name in self.graph_outputs]
        return Graph(self.ops, self.tensors, inputs, outputs, height_axis=2)


def read_onnx(path: Path) -> Graph:
    """Parse an ONNX model (float or QDQ int8) into a footprint `Graph`."""
    return _Reader(_load(path)).read()
