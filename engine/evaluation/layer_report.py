"""Per-layer error report of a quantized model: local SQNR of each quantized layer, worst first.

One call after any quantization (`engine.evaluation.layer_errors` does the measuring):

    result = quantize_tflite(...)   # or quantize_onnx(...)
    rows = layer_report(result.float_model, result.model_path, calibration, top=10)

`source` is the float model the quantized one was made from: for a .tflite, the Keras model that
was converted (`QuantResult.float_model`, optimized if `optimize` was on; a `LazyKerasModel`, loaded here,
when the converter worked from its float model kept in the statistics cache) or a .h5/.keras path; for
a QDQ .onnx, the float ONNX that was quantized (`QuantResult.float_model`; from a path given by
hand, e.g. `work_dir/converted_model/converted_model.onnx`, layers whose tensors were renamed by
pre-processing are left out).
Given a `LazyKerasModel` and the float .tflite the converter calibrated (`QuantResult.float_tflite`: the user's
model unchanged), the report runs that graph's float ops instead of the Keras layers, with the same figures,
and does not load the Keras model.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from engine.common.errors import EngineError
from engine.data.calibration import CalibrationData, first_images
from engine.models.files import read_keras_config
from engine.models.load import KerasModel, LazyKerasModel, load_keras_model

if TYPE_CHECKING:  # imported with the report's libraries
    from engine.evaluation.layer_errors import FloatGraph

log = logging.getLogger(__name__)

DEFAULT_IMAGES = 16


class LayerRow(TypedDict):
    """One row of the report: `sqnr_db` is None when the layer is exact."""

    layer: str
    op: str
    sqnr_db: float | None


def layer_report(
    source: KerasModel | Path | str,
    quantized_path: Path,
    calibration: CalibrationData,
    images: int = DEFAULT_IMAGES,
    top: int | None = None,
    float_tflite: bytes | None = None,
    first: list[np.ndarray] | None = None,
) -> list[LayerRow]:
    """`[{"layer", "op", "sqnr_db"}]`, worst first (`sqnr_db` None when the layer is exact).

    `source`: a Keras model or .h5/.keras path (for a .tflite), or a float .onnx path (for a QDQ .onnx).
    `float_tflite`: the float .tflite the quantized one was made from, for a `LazyKerasModel` source (see above).
    The first `images` calibration images are used: `first` when the caller kept them as the quantizer read them
    (`engine.quantize.common.FirstImages`), else decoded here.
    """
    from engine.evaluation.layer_errors import onnx_layer_errors, tflite_layer_errors

    quantized_path = Path(quantized_path)
    batches = first if first is not None else first_images(calibration, images)
    if not batches:
        raise EngineError("the per-layer report needs at least one calibration image")
    suffix = quantized_path.suffix.lower()
    if suffix == ".tflite":
        graph = _float_graph(source, float_tflite) if float_tflite is not None else None
        errors = tflite_layer_errors(graph or _keras_model(source), quantized_path, batches)
    elif suffix == ".onnx":
        errors = onnx_layer_errors(source, quantized_path, [_onnx_layout(b, quantized_path) for b in batches])
    else:
        raise EngineError(f"no per-layer report for {quantized_path.name}: expected a .tflite or .onnx model")
    rows: list[LayerRow] = [
        {"layer": e.layer, "op": e.op, "sqnr_db": None if math.isinf(e.sqnr_db) else round(e.sqnr_db, 2)}
        for e in errors
    ]
    return rows if top is None else rows[:top]


def format_report(rows: list[LayerRow]) -> str:
    """The rows as a small text table for the log."""
    width = max([len(r["layer"]) for r in rows] + [5])
    lines = [f"{'layer':{width}}  {'op':22}  SQNR dB"]
    lines += [
        f"{r['layer']:{width}}  {r['op']:22}  {'exact' if r['sqnr_db'] is None else format(r['sqnr_db'], '7.2f')}"
        for r in rows
    ]
    return "\n".join(lines)


def _float_graph(source: Any, float_tflite: bytes) -> FloatGraph | None:
    """The float graph of a Keras model file `source` (a `LazyKerasModel`), with its layers from the file's stored
    config; None when `source` is something else or its config does not list its layers."""
    from engine.evaluation.layer_errors import FloatGraph, reported_layers

    if not isinstance(source, LazyKerasModel):
        return None
    layers = reported_layers(read_keras_config(source.path))
    return FloatGraph(float_tflite, layers, source.keras3) if layers is not None else None


def _keras_model(source: Any) -> Any:
    if isinstance(source, (str, Path)):
        return load_keras_model(Path(source))
    return source.get("layer_errors") if isinstance(source, LazyKerasModel) else source


def _onnx_layout(batch: np.ndarray, model_path: Path) -> np.ndarray:
    """An NHWC calibration batch in the ONNX model's input layout."""
    from engine.models.info import describe_model

    if describe_model(model_path).layout == "NCHW":
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    return batch
