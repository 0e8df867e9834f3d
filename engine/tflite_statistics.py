"""Activation ranges of a float .tflite, measured in batches on all cores, and the calibrated model they make.

TFLite's own calibrator runs the float model one invocation at a time in an interpreter that logs every
tensor. Here every activation tensor is made an output of the graph and the model runs on whole batches
with LiteRT (XNNPACK), while the next images decode. The ranges are plain min/max over all images, as
the calibrator records them (its in-place quirk included: `library_internals.calibrator_inplace_inputs`),
and are written where the calibrator writes them: each tensor's QuantizationParameters min/max, which
the converter's quantization step then reads.
"""

from __future__ import annotations

import os

import flatbuffers
import numpy as np

from engine.calibration import CalibrationData
from engine.errors import EngineError
from engine.library_internals import calibrator_inplace_inputs, litert_schema
from engine.quant_common import ProgressCallback, counted_batches

STATISTICS_BATCH = 8  # every activation is a graph output (~4 MiB per image for MobileNet v2 0.35 at 128)
Ranges = dict[int, tuple[float, float]]  # tensor index -> (min, max)


def tensor_ranges(float_model: bytes, calibration: CalibrationData,
                  on_progress: ProgressCallback | None = None) -> Ranges:
    """Min/max of every activation tensor (inputs included) of a float .tflite over the calibration images."""
    from ai_edge_litert.interpreter import Interpreter

    model = _unpack(float_model)
    tensors = activation_tensors(model)
    interpreter = Interpreter(model_content=_pack(_all_outputs(_unpack(float_model), tensors)),
                              num_threads=os.cpu_count())
    index = interpreter.get_input_details()[0]["index"]
    low = np.full(len(tensors), np.inf)
    high = np.full(len(tensors), -np.inf)
    size = None
    for batch in counted_batches(calibration, STATISTICS_BATCH, on_progress):
        if len(batch) != size:
            interpreter.resize_tensor_input(index, list(batch.shape), strict=True)
            interpreter.allocate_tensors()
            size = len(batch)
        interpreter.set_tensor(index, np.ascontiguousarray(batch, np.float32))
        interpreter.invoke()
        _update(interpreter, tensors, low, high)
    if size is None:
        raise EngineError("no calibration images: the TFLite converter needs at least one")
    ranges = {tensor: (float(lo), float(hi)) for tensor, lo, hi in zip(tensors, low, high)}
    return _merge_inplace(model, ranges)


def _update(interpreter, tensors: list[int], low: np.ndarray, high: np.ndarray) -> None:
    """Widen the ranges with the last invocation's tensors (read as views, all dropped on return)."""
    for position, tensor in enumerate(tensors):
        values = interpreter.tensor(tensor)()
        low[position] = min(low[position], values.min())
        high[position] = max(high[position], values.max())


def calibrated_model(float_model: bytes, ranges: Ranges) -> bytes:
    """The float .tflite with each tensor's range recorded as its QuantizationParameters min/max."""
    schema = litert_schema()
    model = _unpack(float_model)
    graph = model.subgraphs[0]
    for tensor, (low, high) in ranges.items():
        params = graph.tensors[tensor].quantization or schema.QuantizationParametersT()
        params.min, params.max = [low], [high]
        graph.tensors[tensor].quantization = params
    return _pack(model)


def activation_tensors(model) -> list[int]:
    """Indices of the tensors of the (single) graph that hold no constant data: what the calibrator logs."""
    graph = model.subgraphs[0]
    used = {int(i) for op in graph.operators for i in [*op.inputs, *op.outputs] if i >= 0}
    used |= {int(i) for i in graph.inputs}
    return sorted(i for i in used if not _is_constant(model, graph.tensors[i]))


def _is_constant(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def _merge_inplace(model, ranges: Ranges) -> Ranges:
    schema = litert_schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    operators = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        operators.append((names.get(max(code.builtinCode, code.deprecatedBuiltinCode), ""),
                          [int(i) for i in op.inputs], [int(i) for i in op.outputs]))
    shapes = {i: (tuple(graph.tensors[i].shape if graph.tensors[i].shape is not None else ()), graph.tensors[i].type)
              for i in ranges}  # a scalar's shape is None
    graph_io = {int(i) for i in [*graph.inputs, *graph.outputs]}
    merged = dict(ranges)
    for tensor, output in calibrator_inplace_inputs(operators, shapes, graph_io).items():
        merged[tensor] = (min(ranges[tensor][0], ranges[output][0]), max(ranges[tensor][1], ranges[output][1]))
    return merged


def _all_outputs(model, tensors: list[int]):
    graph = model.subgraphs[0]
    inputs = {int(i) for i in graph.inputs}
    graph.outputs = np.array(sorted(set(tensors) - inputs | {int(i) for i in graph.outputs}), dtype=np.int32)
    return model


def _unpack(blob: bytes):
    schema = litert_schema()
    model = schema.ModelT.InitFromPackedBuf(blob, 0)
    if len(model.subgraphs) != 1:
        raise EngineError(f"the float model has {len(model.subgraphs)} subgraphs (control flow): "
                          "stquant calibrates single-graph image classifiers only")
    return model


def _pack(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
