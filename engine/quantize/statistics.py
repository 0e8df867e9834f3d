"""Activation ranges of a float .tflite, measured in batches on all cores, and the calibrated model they make.

TFLite's own calibrator runs the float model one invocation at a time in an interpreter that logs every
tensor. Here every activation tensor is made an output of the graph and the model runs on whole batches
with LiteRT (XNNPACK), while the next images decode. The ranges are min/max over all images recorded as
the calibrator records them (TensorFlow's tensorflow/lite/tools/optimize/calibration/): for the float32
activations only, NaN values skipped, a max never below FLT_MIN (its MinMax starts from
`numeric_limits<float>::min()`), in-place inputs merged with their op's output
(`library_internals.calibrator_inplace_inputs`). They are written where the calibrator writes them: each
tensor's QuantizationParameters min/max, which the converter's quantization step then reads.
The values themselves differ from the calibrator's by float rounding only (XNNPACK's kernels are not its
built-in ones): at most 1.8e-6 relative on the model zoo's models.
The same pass can fill a histogram of every tensor (`engine.quantize.histograms`; it costs several times the
min/max, so only when asked), from which the other calibration methods derive their ranges (`method_ranges`):
each within the tensor's min/max, a max never below FLT_MIN, and the calibrator's in-place merge applied to the
derived ranges (an in-place input's range covers its op's output's range, whatever the method), so that `minmax`
stays the converter's own calibration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np

from engine.common.errors import EngineError
from engine.common.threads import usable_cores
from engine.data.calibration import CalibrationData
from engine.models.library_internals import (
    TfliteModel,
    TfliteSubGraph,
    TfliteTensor,
    calibrator_inplace_inputs,
    litert_schema,
)
from engine.quantize.common import ProgressCallback, counted_batches
from engine.quantize.histograms import BINS, Histogram, method_range

log = logging.getLogger(__name__)

RULES = 3  # what is recorded (part of the cache key): float32 only, NaN skipped, FLT_MIN floor; 3: histograms
FLOAT32 = 0  # schema TensorType
FLT_MAX, FLT_MIN = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)
STATISTICS_BATCH = 8  # small: every activation is a graph output, so memory grows with the batch
Ranges = dict[int, tuple[float, float]]  # tensor index -> (min, max)


@dataclass(frozen=True)
class Statistics:
    """What the pass measures: each activation's min/max as the calibrator records them (before its in-place
    merge) and its histogram."""

    ranges: Ranges
    histograms: dict[int, Histogram] | None  # None: measured without

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (the statistics cache's value; checked when read by `cache.TFLITE_STATISTICS`)."""
        histograms = self.histograms
        return {
            "bins": BINS,
            "ranges": {str(tensor): pair for tensor, pair in self.ranges.items()},
            "histograms": None if histograms is None else {str(t): h.to_json() for t, h in histograms.items()},
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Statistics:
        histograms = stored["histograms"]
        return cls(
            {int(tensor): (low, high) for tensor, (low, high) in stored["ranges"].items()},
            None if histograms is None else {int(t): Histogram.from_json(h) for t, h in histograms.items()},
        )


def tensor_ranges(
    float_model: bytes, calibration: CalibrationData, on_progress: ProgressCallback | None = None
) -> Ranges:
    """Min/max of every activation tensor (inputs included) of a float .tflite over the calibration images."""
    model = unpack(float_model)
    return method_ranges(model, tensor_statistics(model, calibration, False, on_progress), "minmax")


def method_ranges(model: TfliteModel, statistics: Statistics, method: str) -> Ranges:
    """The range of every activation tensor of the float `model` (`unpack`) by calibration `method` (see the module
    docstring); the statistics must hold histograms unless the method is `minmax`."""
    histograms = statistics.histograms
    if histograms is None:
        if method != "minmax":
            raise ValueError(f"calibration method {method} needs the histograms")
        return _merge_inplace(model, statistics.ranges)
    ranges = {}
    for tensor, (low, high) in statistics.ranges.items():
        bottom, top = method_range(histograms[tensor], low, high, method)
        ranges[tensor] = (bottom, max(top, FLT_MIN))
    return _merge_inplace(model, ranges)


def tensor_statistics(
    model: TfliteModel,
    calibration: CalibrationData,
    with_histograms: bool,
    on_progress: ProgressCallback | None = None,
) -> Statistics:
    """Min/max (and histogram, `with_histograms`) of every activation tensor (inputs included) of the float `model`
    (`unpack`; left as it was) over the calibration images."""
    from ai_edge_litert.interpreter import Interpreter

    tensors = activation_tensors(model)
    interpreter = Interpreter(model_content=_with_all_outputs(model, tensors), num_threads=usable_cores())
    index = interpreter.get_input_details()[0]["index"]
    low = np.full(len(tensors), FLT_MAX)  # the calibrator's initial min and max
    high = np.full(len(tensors), FLT_MIN)
    histograms = [Histogram() for _ in tensors] if with_histograms else None
    with_nan: set[int] = set()
    size = None
    for batch in counted_batches(calibration, STATISTICS_BATCH, on_progress):
        if len(batch) != size:
            interpreter.resize_tensor_input(index, list(batch.shape), strict=True)
            interpreter.allocate_tensors()
            size = len(batch)
        interpreter.set_tensor(index, np.ascontiguousarray(batch, np.float32))
        interpreter.invoke()
        _update(interpreter, tensors, low, high, histograms, with_nan)
    if size is None:
        raise EngineError("no calibration images: the TFLite converter needs at least one")
    ranges = _checked(model.subgraphs[0], tensors, low, high, with_nan)
    return Statistics(ranges, None if histograms is None else dict(zip(tensors, histograms)))


def _update(
    interpreter: Any,
    tensors: list[int],
    low: np.ndarray,
    high: np.ndarray,
    histograms: list[Histogram] | None,
    with_nan: set[int],
) -> None:
    """Widen the ranges and fill the histograms with the last invocation's tensors (read as views, all dropped
    on return); NaN values are skipped, and the tensors that had some are added to `with_nan`."""
    for position, tensor in enumerate(tensors):
        values = interpreter.tensor(tensor)().ravel()
        lo, hi = values.min(), values.max()
        if np.isnan(lo):
            with_nan.add(tensor)
            values = values[~np.isnan(values)]
            if not values.size:
                continue
            lo, hi = values.min(), values.max()
        low[position] = np.fmin(low[position], lo)
        high[position] = np.fmax(high[position], hi)
        if histograms is not None:
            histograms[position].add(values, float(lo), float(hi))


def _checked(
    graph: TfliteSubGraph, tensors: list[int], low: np.ndarray, high: np.ndarray, with_nan: set[int]
) -> Ranges:
    """The ranges; a warning names the tensors that had NaN values, a tensor of NaN only is an error."""
    if with_nan:
        log.warning(
            "the float model computed NaN values on the calibration images (tensors %s); "
            "they are left out of the ranges",
            ", ".join(_name(graph, t) for t in sorted(with_nan)),
        )
    for tensor, lo, hi in zip(tensors, low, high):  # execution order: the first one is named
        if lo > hi:
            raise EngineError(
                f"the float model computes only NaN in tensor {_name(graph, tensor)} "
                "on the calibration images: it cannot be calibrated"
            )
    return {tensor: (float(lo), float(hi)) for tensor, lo, hi in zip(tensors, low, high)}


def _name(graph: TfliteSubGraph, tensor: int) -> str:
    return str(graph.tensors[tensor].name.decode(errors="replace"))


def calibrated_model(float_model: bytes, ranges: Ranges) -> bytes:
    """The float .tflite with each tensor's range recorded as its QuantizationParameters min/max."""
    return with_ranges(unpack(float_model), ranges)


def with_ranges(model: TfliteModel, ranges: Ranges) -> bytes:
    """`calibrated_model` of the float `model` (`unpack`), whose tensors' ranges are set in place."""
    schema = litert_schema()
    graph = model.subgraphs[0]
    for tensor, (low, high) in ranges.items():
        params = graph.tensors[tensor].quantization or schema.QuantizationParametersT()
        params.min, params.max = [low], [high]
        graph.tensors[tensor].quantization = params
    return _pack(model)


def op_output_names(blob: bytes) -> list[str]:
    """The name of each op's first output tensor in a .tflite of one graph, in execution order (read in place: the
    weights are not unpacked)."""
    graph = litert_schema().Model.GetRootAs(blob, 0).Subgraphs(0)
    ops = (graph.Operators(i) for i in range(graph.OperatorsLength()))
    return [graph.Tensors(op.Outputs(0)).Name().decode(errors="replace") for op in ops if op.OutputsLength()]


def activation_tensors(model: TfliteModel) -> list[int]:
    """Indices of the float32 tensors an op of the (single) graph reads or writes that hold no constant
    data, in execution order: what the calibrator logs (not the int32 shapes a Reshape of the dynamic
    batch computes)."""
    graph = model.subgraphs[0]
    used = dict.fromkeys(int(i) for op in graph.operators for i in [*op.inputs, *op.outputs] if i >= 0)
    return [i for i in used if graph.tensors[i].type == FLOAT32 and not _is_constant(model, graph.tensors[i])]


def _is_constant(model: TfliteModel, tensor: TfliteTensor) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def _merge_inplace(model: TfliteModel, ranges: Ranges) -> Ranges:
    schema = litert_schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    operators = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        operators.append(
            (
                names.get(max(code.builtinCode, code.deprecatedBuiltinCode), ""),
                [int(i) for i in op.inputs],
                [int(i) for i in op.outputs],
            )
        )
    shapes = {
        i: (tuple(graph.tensors[i].shape if graph.tensors[i].shape is not None else ()), graph.tensors[i].type)
        for i in ranges
    }  # a scalar's shape is None
    graph_io = {int(i) for i in [*graph.inputs, *graph.outputs]}
    merged = dict(ranges)
    for tensor, output in calibrator_inplace_inputs(operators, shapes, graph_io).items():
        merged[tensor] = (min(ranges[tensor][0], ranges[output][0]), max(ranges[tensor][1], ranges[output][1]))
    return merged


def _with_all_outputs(model: TfliteModel, tensors: list[int]) -> bytes:
    """The .tflite of `model` with `tensors` made outputs of its graph (`model` is left as it was)."""
    graph = model.subgraphs[0]
    inputs, outputs = {int(i) for i in graph.inputs}, graph.outputs
    graph.outputs = np.array(sorted(set(tensors) - inputs | {int(i) for i in outputs}), dtype=np.int32)
    try:
        return _pack(model)
    finally:
        graph.outputs = outputs


def unpack(blob: bytes) -> TfliteModel:
    """The float .tflite `blob` as LiteRT's flatbuffer objects; EngineError unless it has one graph."""
    schema = litert_schema()
    model = schema.ModelT.InitFromPackedBuf(blob, 0)
    if len(model.subgraphs) != 1:
        raise EngineError(
            f"the float model has {len(model.subgraphs)} subgraphs (control flow): "
            "stquant calibrates single-graph image classifiers only"
        )
    return model


def _pack(model: TfliteModel) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
