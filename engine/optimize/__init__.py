"""`quantization.optimize` and `quantization.bias_correction` applied to a model before quantization.

Keras models (both quantizers; the ONNX quantizer converts the optimized model):
- per_tensor + optimize: BN folding, dead-channel removal and cross-layer equalization with
  per-channel ReLU6 clips (`engine.optimize.keras`); it restores most of the per-tensor agreement with
  float lost without it (both quantizers; see docs/benchmarks.md).
- per_channel + optimize: the model is left as it is. Both converters already fold BatchNorm, and
  per-channel weight scales already even out channel ranges; on the tutorial model neither BN folding with
  dead-channel removal nor full equalization beat plain per-channel (see docs/benchmarks.md).
- bias_correction: the mean output shift of int8 weights (per tensor or per channel, following
  `granularity`) is subtracted from each conv/dense bias, estimated on at most
  `BIAS_CORRECTION_IMAGES` calibration images.
Keras 3 and tf_keras (Keras 2) functional (or Sequential) models are rewritten alike; a model that
cannot be (subclassed) fails the run with one line naming the key, never quantized silently as it is.

ONNX models: optimize folds BatchNormalization into the Conv before it (no equalization).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.common.errors import ConfigError, EngineError
from engine.config.schema import Quantization
from engine.data.calibration import CalibrationData, first_images
from engine.models.load import KerasModel

log = logging.getLogger(__name__)

BIAS_CORRECTION_IMAGES = 64

Asked = tuple[bool, bool, bool]  # (optimize, bias_correction, per_channel)


@dataclass
class LastOptimized:
    """The last model `optimize_keras` made, kept by a caller that quantizes one model several ways
    (`stquant compare`: the variants that differ only in input/output type share one optimized model, and so
    one trace and one statistics pass). The caller holds it: nothing outlives the caller's models."""

    model: KerasModel = None
    calibration: CalibrationData | None = None
    asked: Asked | None = None
    result: tuple[KerasModel, dict[str, Any], list[str]] | None = None  # (optimized model, report, notes added)

    def reusable(
        self, model: KerasModel, calibration: CalibrationData, asked: Asked
    ) -> tuple[KerasModel, dict[str, Any], list[str]] | None:
        """The stored result if it was made from this very model and calibration data for the same request."""
        same = self.model is model and self.calibration is calibration and self.asked == asked
        return self.result if same else None


def changes_model(settings: Quantization) -> bool:
    """Whether `optimize_keras` transforms the Keras model (`quantization.optimize` or `bias_correction`)."""
    return settings.optimize or settings.bias_correction


def optimize_keras(
    model: KerasModel,
    model_path: Path,
    settings: Quantization,
    calibration: CalibrationData,
    notes: list[str],
    last: LastOptimized | None = None,
) -> tuple[KerasModel, dict[str, Any] | None]:
    """The model to quantize and the optimization report (None when nothing was asked or done).

    `last`: the previous result, reused when the same model, calibration data and settings come again
    (and replaced by this one)."""
    if not changes_model(settings):
        return model, None
    asked = (settings.optimize, settings.bias_correction, settings.granularity == "per_channel")
    reused = last.reusable(model, calibration, asked) if last is not None else None
    if reused is not None:
        optimized, report, added = reused
        notes.extend(added)
        return optimized, copy.deepcopy(report)
    before = len(notes)
    optimized, report = _optimize(model, model_path, calibration, notes, *asked)
    if last is not None:
        last.model, last.calibration, last.asked = model, calibration, asked
        last.result = (optimized, copy.deepcopy(report), notes[before:])
    return optimized, report


def _optimize(
    model: KerasModel,
    model_path: Path,
    calibration: CalibrationData,
    notes: list[str],
    optimize: bool,
    bias_correction: bool,
    per_channel: bool,
) -> tuple[KerasModel, dict[str, Any]]:
    from engine.optimize.keras import (
        OptimizeReport,
        correct_biases,
        optimize_for_per_tensor,
    )

    if optimize and per_channel:
        notes.append(
            "optimize: per_channel: model left as it is (the converter folds BatchNorm; equalization only "
            "helps per-tensor weights)"
        )
        log.info(notes[-1])
        if not bias_correction:
            return model, OptimizeReport().to_dict()
    model = _functional(model, model_path, optimize and not per_channel)
    data = first_images(calibration, BIAS_CORRECTION_IMAGES) if bias_correction else None
    if optimize and not per_channel:
        model, report = optimize_for_per_tensor(model, bias_correction_data=data)
    else:
        model = _copy(model)  # corrected in place: the caller's model (evaluated as the float model) stays as it is
        report = OptimizeReport(biases_corrected=correct_biases(model, data or [], per_channel=per_channel))
    notes.append(report.summary())
    return model, report.to_dict()


def fold_onnx_batchnorms(source: Path, out_path: Path, notes: list[str]) -> tuple[Path, dict[str, Any]]:
    """Fold BatchNormalization into Conv in the ONNX model at `source`: the model to quantize and a report."""
    import onnx

    from engine.common.atomic import atomic_path
    from engine.optimize.onnx import fold_batchnorm

    model = onnx.load(str(source))
    folded, count = fold_batchnorm(model)
    remaining = {n.output[0] for n in folded.graph.node if n.op_type == "BatchNormalization"}
    names = [
        n.name or n.output[0]
        for n in model.graph.node
        if n.op_type == "BatchNormalization" and n.output[0] not in remaining
    ]
    notes.append(f"optimize: {count} BatchNormalization folded into Conv (ONNX input; no cross-layer equalization)")
    log.info(notes[-1])
    if count:
        with atomic_path(out_path) as tmp:
            onnx.save(folded, str(tmp))
        source = out_path
    return source, {"batchnorms_folded": names}


def _copy(model: Any) -> Any:
    """A model of the same Keras with the same layers and its own copy of the weights."""
    from engine.models.library_internals import keras_of

    copied = keras_of(model).models.clone_model(model)
    copied.set_weights(model.get_weights())
    return copied


def _functional(model: Any, model_path: Path, optimize: bool) -> Any:
    """`model` as a functional model (Keras 3 or tf_keras); a ConfigError naming the key if it is not one."""
    from engine.optimize.keras import functional

    try:
        return functional(model)
    except EngineError as error:
        key = "quantization.optimize" if optimize else "quantization.bias_correction"
        raise ConfigError(
            f"{key}: cannot rewrite {model_path.name}: {error}; set {key}: False to quantize it as it is"
        ) from None
