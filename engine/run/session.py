"""One model loaded and its images decoded once, for the jobs that quantize it several ways (`stquant compare`,
`stquant recover`): the calibration images as pixels, the evaluation images (the one rule of
`engine.run.preflight.evaluation_set`), the float model and its accuracy, measured once.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.common.errors import ConfigError, InputError
from engine.config.schema import Config
from engine.data.calibration import ImageCalibrationData, PixelCalibrationData
from engine.data.images import decode_all, decoding_processes
from engine.run.job import Job
from engine.run.preflight import ImageSet, Plan, calibration_set, evaluation_set, prepare

if TYPE_CHECKING:  # imported by the stages that use them (TensorFlow, ONNX Runtime)
    from engine.evaluation.accuracy import EvalResult
    from engine.evaluation.predictors import Predictor
    from engine.models.trace import Trace

log = logging.getLogger(__name__)


@dataclass
class Session:
    """What every quantization of one job shares. `evaluation`: None when there is nothing to measure on."""

    plan: Plan
    calibration: PixelCalibrationData
    evaluation: ImageSet | None
    images: np.ndarray | None  # the decoded evaluation images
    labels: list[int]  # their labels (the images that could be decoded)
    class_names: list[str]
    predictor: Predictor
    float_tflite: bytes | None = None  # the float .tflite the TFLite converter calibrated, once it has run
    float_result: EvalResult | None = None

    @property
    def keras_model(self) -> Any:
        """The loaded Keras model (None for an ONNX model)."""
        return self.predictor.keras_model

    def evaluate(
        self, model_path: Path | str, stage: str | None, job: Job, subset: np.ndarray | None = None
    ) -> EvalResult:
        """Accuracy of a quantized model on the evaluation images (those at the indices `subset`, if given), as
        stage `stage` (None: within the current stage)."""
        import contextlib

        from engine.evaluation.accuracy import evaluate
        from engine.evaluation.predictors import load_predictor

        assert self.images is not None  # callers measure only when there are evaluation images
        images, labels = self.images, self.labels
        if subset is not None:
            images, labels = images[subset], [labels[i] for i in subset]
        with job.stage(stage) if stage else contextlib.nullcontext():
            return evaluate(load_predictor(model_path), images, labels, self.class_names, spec=self.plan.image_spec())

    def evaluate_float(self, job: Job, trace: Trace | None = None) -> EvalResult:
        """The float model's accuracy on the evaluation images, measured once (`trace`: the last model a quantizer
        traced, converted if it is this model and the converter's float graph is not there)."""
        from engine.evaluation.accuracy import evaluate

        assert self.images is not None
        if self.float_result is None:
            with job.stage("evaluate_float"):
                if hasattr(self.predictor, "run_as_tflite"):  # Keras: its float TFLite graph (the converter's, if any)
                    self.predictor.run_as_tflite(self.float_tflite, trace)
                images, labels, spec = self.images, self.labels, self.plan.image_spec()
                self.float_result = evaluate(self.predictor, images, labels, self.class_names, spec=spec)
        return self.float_result


def open_session(job: Job, config: Config, not_measured: str) -> Session:
    """Prepare `config` (a chain), decode its images while the model loads; `not_measured` is the warning
    when there are no evaluation images."""
    from engine.evaluation.predictors import load_predictor

    with job.stage("prepare"):
        plan = prepare(config)
    for warning in dict.fromkeys(plan.warnings):
        log.warning("%s", warning)
        job.record.warn("prepare", warning)
    calibration_images = calibration_set(config, plan)
    if calibration_images is None:
        raise ConfigError(
            "dataset.quantization_path: this command needs calibration images "
            "(dataset.quantization_path or dataset.training_path)"
        )
    evaluation = evaluation_set(config, plan)
    if evaluation is None:
        job.record.warn("prepare", not_measured)
        log.warning("%s", not_measured)
    else:
        log.info("accuracy and agreement on %d images of %s", len(evaluation.files), evaluation.key)
    with ThreadPoolExecutor(1) as waiter, decoding_processes() as processes:
        decoding = waiter.submit(_decode, job, config, plan, calibration_images, evaluation, processes)
        with job.stage("load_model"):
            predictor = load_predictor(plan.model_path)
        calibration, images, kept = decoding.result()
    labels = [evaluation.labels[i] for i in kept] if evaluation else []
    class_names = plan.class_names or [str(i) for i in range(plan.model.output_width or 0)]
    measured = evaluation if labels else None
    return Session(plan, calibration, measured, images if labels else None, labels, class_names, predictor)


def _decode(
    job: Job,
    config: Config,
    plan: Plan,
    calibration_images: ImageSet,
    evaluation: ImageSet | None,
    processes: Executor | None,
) -> tuple[PixelCalibrationData, np.ndarray | None, list[int]]:
    ds, spec = config.dataset, plan.image_spec()
    files, key = calibration_images.files, calibration_images.key
    streamed = ImageCalibrationData(files, spec, key, {"seed": ds.seed, "split": ds.quantization_split})
    with job.stage("decode_images"):
        pixels, kept = decode_all(files, spec, processes=processes, as_pixels=True)
        if not kept:
            raise InputError(f"{key}: none of the {len(files)} calibration images could be decoded")
        calibration = PixelCalibrationData(pixels, spec, key, streamed.identity(), len(files) - len(kept))
        images: np.ndarray | None = None
        evaluation_kept: list[int] = []
        if evaluation is not None:
            images, evaluation_kept = decode_all(evaluation.files, spec, processes=processes, as_pixels=True)
    return calibration, images, evaluation_kept
