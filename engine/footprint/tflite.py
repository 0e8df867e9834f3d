"""Lower a .tflite flatbuffer to a footprint `Graph` without TensorFlow (LiteRT's schema module only).

Weights are the constant inputs of the ops: int8/float kernels and int32 biases of convolutions and
fully connected layers, plus non-integer constants of other ops; int32/int64 constants of other ops
(paddings, axes, shapes) are code parameters, not weights. Quantization parameters are not counted:
that is how STM32Cube.AI's "weights (ro)" figure adds up (for the model zoo's MobileNetV2-0.35-128 it is
exactly the int8 weights + int32 biases).
"""

from __future__ import annotations

from pathlib import Path

from engine.common.errors import InputError
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
from engine.models.library_internals import TfliteModel, TfliteOperator, TfliteTensor, litert_schema

schema = litert_schema()

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_ITEMSIZE = {
    schema.TensorType.FLOAT32: 4,
    schema.TensorType.FLOAT16: 2,
    schema.TensorType.INT32: 4,
    schema.TensorType.UINT8: 1,
    schema.TensorType.INT64: 8,
    schema.TensorType.BOOL: 1,
    schema.TensorType.INT16: 2,
    schema.TensorType.INT8: 1,
    schema.TensorType.FLOAT64: 8,
    schema.TensorType.UINT32: 4,
    schema.TensorType.UINT16: 2,
    schema.TensorType.INT4: 1,
}
_INTEGER_PARAMS = {schema.TensorType.INT32, schema.TensorType.INT64}
_FLOATS = {schema.TensorType.FLOAT32, schema.TensorType.FLOAT16, schema.TensorType.FLOAT64}

WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}
VIEWS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
PADS = {"PAD", "PADV2"}
ELEMENTWISE = {
    "ADD",
    "SUB",
    "MUL",
    "DIV",
    "MAXIMUM",
    "MINIMUM",
    "SQUARED_DIFFERENCE",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "RELU_0_TO_1",
    "LEAKY_RELU",
    "PRELU",
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "ABS",
    "NEG",
    "QUANTIZE",
    "DEQUANTIZE",
}
ABSORB_PADDING = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"}
REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}


def _load(path: Path) -> TfliteModel:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise InputError(f"not a TFLite flatbuffer: {path}")
    return schema.ModelT.InitFromPackedBuf(data, 0)


def _const_bytes(model: TfliteModel, tensor: TfliteTensor) -> int:
    """Stored bytes of a constant tensor (0 when the tensor is an activation)."""
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return 0
    buf = model.buffers[tensor.buffer]
    if buf.data is not None and len(buf.data):
        return len(buf.data)
    return int(buf.size) if buf.offset > 1 else 0


def _shape(tensor: TfliteTensor) -> tuple[int, ...]:
    return tuple(max(int(d), 1) for d in (tensor.shape if tensor.shape is not None else ()))


def _macc(kind: str, op: TfliteOperator, shapes: list[tuple[int, ...]], out: tuple[int, ...]) -> int:
    """MACC like STM32Cube.AI: kernel volume per output for convolutions/dense, else output size."""
    out_n = elements(out)
    if kind == "CONV_2D":
        _, kh, kw, cin = shapes[1]
        return out_n * kh * kw * cin
    if kind == "DEPTHWISE_CONV_2D":
        return out_n * shapes[1][1] * shapes[1][2]
    if kind in ("FULLY_CONNECTED", "BATCH_MATMUL"):
        return out_n * shapes[1][-1 if kind == "FULLY_CONNECTED" else -2]
    if kind == "TRANSPOSE_CONV":
        cout, kh, kw, _ = shapes[1]
        return elements(shapes[2]) * kh * kw * cout
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return out_n * int(op.builtinOptions.filterHeight) * int(op.builtinOptions.filterWidth)
    if kind in REDUCTIONS:
        return elements(shapes[0])
    if kind in VIEWS or kind in PADS:
        return 0
    return out_n


def _window(kind: str, op: TfliteOperator, shapes: list[tuple[int, ...]], out: tuple[int, ...]) -> Window | None:
    """Kernel height, stride and top padding of a 2-D convolution or pooling (NHWC)."""
    if kind not in ABSORB_PADDING or len(shapes[0]) != 4 or len(out) != 4:
        return None
    opts = op.builtinOptions
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kernel, kernel_w = opts.filterHeight, opts.filterWidth
    else:
        kernel = (shapes[1][1] - 1) * max(opts.dilationHFactor, 1) + 1
        kernel_w = (shapes[1][2] - 1) * max(opts.dilationWFactor, 1) + 1
    stride = max(opts.strideH, 1)
    pad = same_pad_top(shapes[0][1], out[1], kernel, stride) if opts.padding == schema.Padding.SAME else 0
    return Window(kernel, stride, pad, kind == "DEPTHWISE_CONV_2D", kernel_w, max(opts.strideW, 1))


def _scratch(kind: str, op: TfliteOperator, shapes: list[tuple[int, ...]], in_itemsize: int) -> int:
    """Int8 kernel scratch of a 2-D convolution on 8-bit input (`conv_scratch_bytes`,
    `depthwise_scratch_bytes`), else 0."""
    if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D") or in_itemsize != 1 or len(shapes) < 2 or len(shapes[1]) != 4:
        return 0
    if kind == "DEPTHWISE_CONV_2D":
        return depthwise_scratch_bytes(shapes[1][3])
    out_c, kh, kw, in_c = shapes[1]
    opts = op.builtinOptions
    pointwise = kh == kw == 1 and max(opts.strideH, 1) == max(opts.strideW, 1) == 1
    return conv_scratch_bytes(in_c, kh * kw, out_c, pointwise)


def _role(kind: str) -> Role:
    if kind in VIEWS:
        return Role.VIEW
    if kind in PADS:
        return Role.PAD
    return Role.ELEMENTWISE if kind in ELEMENTWISE else Role.COMPUTE


def read_tflite(path: Path) -> Graph:
    """Parse the main subgraph of a .tflite model into a footprint `Graph`."""
    model = _load(path)
    subgraph = model.subgraphs[0]
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []

    def activation(index: int) -> str:
        t = subgraph.tensors[index]
        key = f"{index}:{t.name.decode(errors='replace')}"
        tensors.setdefault(key, Tensor(key, _shape(t), _ITEMSIZE.get(t.type, 4), t.type in _FLOATS))
        return key

    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
        shapes = [_shape(subgraph.tensors[i]) if i >= 0 else () for i in inputs]
        act_in, params, weight_bytes = [], 0, 0
        for slot, index in enumerate(inputs):
            if index < 0:
                continue
            t = subgraph.tensors[index]
            nbytes = _const_bytes(model, t)
            if not nbytes:
                act_in.append(activation(index))
            elif (kind in WEIGHTED and not (kind == "TRANSPOSE_CONV" and slot == 0)) or t.type not in _INTEGER_PARAMS:
                params += elements(_shape(t))
                weight_bytes += nbytes
        outs = [activation(int(i)) for i in (op.outputs if op.outputs is not None else [])]
        out_shape = tensors[outs[0]].shape if outs else ()
        name = subgraph.tensors[int(op.outputs[0])].name.decode(errors="replace") if outs else kind
        ops.append(
            Op(
                kind=kind,
                name=name.split(";")[-1],
                inputs=act_in,
                outputs=outs,
                role=_role(kind),
                absorbs_padding=kind in ABSORB_PADDING,
                window=_window(kind, op, shapes, out_shape),
                macc=_macc(kind, op, shapes, out_shape),
                scratch_bytes=_scratch(kind, op, shapes, tensors[act_in[0]].itemsize if act_in else 0),
                params=params,
                weight_bytes=weight_bytes,
            )
        )
    graph_inputs = [activation(int(i)) for i in subgraph.inputs]
    graph_outputs = [activation(int(i)) for i in subgraph.outputs]
    return Graph(ops, tensors, graph_inputs, graph_outputs)
