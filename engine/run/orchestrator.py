"""One run of an operation mode: run folder, stages, events, `run_summary.json` (an `engine.run.summary.RunSummary`).

quantization: calibrate + quantize.  evaluation: evaluate `general.model_path`.  benchmarking: footprint.
chain_qb: quantize, footprint.  chain_eqe: evaluate float, quantize, evaluate quantized on the same
images (decoded once; a Keras model quantized by the TFLite converter is evaluated on the float graph the
converter builds: after quantizing, or while TensorFlow is imported when an earlier run kept that graph in the
statistics cache, with no TensorFlow at all when it kept the quantized model too).  chain_eqeb: chain_eqe plus
footprint. Every quantization also reports the footprint of its output (it is cheap); `benchmarking.board` adds
whether it fits that board.

The quantized model is the product: the per-layer report, its footprint and MLflow logging are diagnostics
whose failure is a warning in the summary, and so are the confusion-matrix PNGs. Those and the footprint of a
quantization are made in a thread beside the stages that follow (the footprint beside the per-layer report), off
their path; the run waits for them before it ends. Nothing written before a failure or an interrupt is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from engine.common.atomic import write_text_atomic
from engine.common.errors import ConfigError, InputError, StquantError, first_line
from engine.common.threads import spare_cores
from engine.config.schema import (
    BENCHMARK_MODES,
    EVALUATION_MODES,
    QUANTIZATION_MODES,
    Config,
    Quantization,
    dump_config,
    to_data,
)
from engine.config.yaml_source import YamlMap
from engine.data.calibration import CalibrationData, ImageCalibrationData, RandomCalibrationData
from engine.data.images import decode_all, decoding_processes
from engine.data.preprocess import ImageSpec
from engine.models.library_internals import KERAS_METADATA, is_keras3
from engine.models.load import LazyKerasModel
from engine.run.events import Reporter
from engine.run.folder import claimed_run_dir
from engine.run.job import Job
from engine.run.mlflow_log import is_uri
from engine.run.preflight import DATASET_KEYS, Plan, calibration_set, evaluation_set, prepare
from engine.run.summary import Accuracy, Calibration, Footprint, LayerError, RunSummary

if TYPE_CHECKING:  # imported by the stages that use them (TensorFlow, ONNX Runtime)
    from engine.evaluation.accuracy import EvalResult
    from engine.evaluation.predictors import Predictor
    from engine.footprint import Footprint as FootprintEstimate
    from engine.models.load import KerasModel
    from engine.models.trace import Trace
    from engine.quantize.cache import StatsCache
    from engine.quantize.common import FirstImages, ModelMemo, ProgressCallback, QuantResult

# The decoded evaluation set: images (uint8 pixels or float inputs), labels, set name, the spec that rescales them.
EvaluationSet = tuple[np.ndarray, list[int], str, ImageSpec]

Result = TypeVar("Result")

log = logging.getLogger(__name__)
LAYER_ERRORS_KEPT = 30
INTERMEDIATES = "intermediates"  # the ONNX quantizer's work files, inside the run folder
PATH_KEYS = (
    ("general", "model_path"),
    ("dataset", "classes_file_path"),
    ("dataset", "prediction_path"),
    *(("dataset", key) for key in DATASET_KEYS),
)


class Run(Job):
    """State of one run; `execute()` performs the stages of the configured operation mode."""

    def __init__(self, config: Config, reporter: Reporter, run_dir: Path, use_cache: bool = True) -> None:
        self.summary = RunSummary(operation_mode=config.operation_mode, run_dir=str(run_dir))
        super().__init__(reporter, run_dir, self.summary)
        self.config = config
        self.use_cache = use_cache
        self.class_names: list[str] = []
        self._results: dict[str, EvalResult] = {}  # "float" / "quantized" -> its evaluation
        self._keras3 = False  # the quantized model was converted from a Keras 3 model (its layer scopes are suffixed)
        self._keras: LazyKerasModel | None = None  # the Keras model of general.model_path, loaded when a stage needs it
        self._pending_report: tuple[QuantResult, FirstImages] | None = None  # quantized, not yet reported per layer
        self._kept_float: tuple[str, EvalResult, str] | None = None  # on the kept graph (its LiteRT), to record
        self._beside: ThreadPoolExecutor | None = None  # the thread of `_aside`, while the stages run
        self._drawn: list[Future[None]] = []  # the confusion-matrix PNGs, drawn in that thread
        self._kept_graph: tuple[bytes | None] | None = None  # `_kept_float_tflite`, once looked up

    def save(self) -> None:
        """Write `run_summary.json`."""
        if self._keras is not None:
            self.summary.keras_loaded_by = list(self._keras.needed_by)
        write_text_atomic(self.run_dir / "run_summary.json", self.summary.to_json())

    def announce(self) -> None:
        self.reporter.result(self.summary)

    def start(self) -> None:
        """Write the run's config.yaml, then run the stages."""
        write_text_atomic(self.run_dir / "config.yaml", dump_config(portable_config(self.config)))
        log.info("operation_mode: %s, run folder: %s", self.config.operation_mode, self.run_dir)
        self.execute()

    def log_to_mlflow(self) -> None:
        """Log the finished run (its folder, with the summary written first) to MLflow: a diagnostic."""
        self.save()
        with self.diagnostic("mlflow"):
            _log_mlflow(self.config, self.summary, self.run_dir)

    def execute(self) -> RunSummary:
        with ThreadPoolExecutor(1, thread_name_prefix="stquant-aside") as self._beside:
            try:
                self._stages()
            except BaseException as error:
                self._beside.shutdown(cancel_futures=isinstance(error, KeyboardInterrupt))
                raise
            finally:
                self._beside = None
            for drawn in self._drawn:
                self._drawing_done(drawn)
        self.summary.status = "ok"
        return self.summary

    def _aside(self, work: Callable[..., Result], *args: object) -> Future[Result]:
        """`work(*args)` in the run's thread for what needs only files the run wrote (the confusion-matrix PNGs, the
        footprint): beside the stages that follow (one core of their own on a machine with two)."""
        assert self._beside is not None  # set while `execute` runs the stages
        return self._beside.submit(work, *args)

    def _drawing_done(self, drawn: Future[None]) -> None:
        """Wait for a confusion-matrix PNG; one that could not be drawn is a warning (a diagnostic)."""
        try:
            drawn.result()
        except Exception as error:  # noqa: BLE001 - any failure of a diagnostic is reported, never fatal
            message = first_line(error)
            log.warning("confusion_matrix failed (the run goes on): %s", message)
            self.summary.warn("confusion_matrix", message)

    def _stages(self) -> None:
        mode = self.config.operation_mode
        with self.stage("prepare"):
            plan = prepare(self.config)
        for warning in dict.fromkeys(plan.warnings):
            log.warning("%s", warning)
            self.summary.warn("prepare", warning)
        self.summary.model = str(plan.model_path)
        self.class_names = plan.class_names or [str(i) for i in range(plan.model.output_width or 0)]
        log.info(
            "model %s: %s input %s, %s outputs",
            plan.model_path.name,
            plan.model.format,
            "x".join(map(str, plan.model.input_shape[1:])),
            plan.model.output_width,
        )
        evaluation: EvaluationSet | None = None
        predictor: Predictor | None = None
        # A chain loads a Keras model once, for both evaluating and quantizing it. Through the TFLite converter
        # the float model is evaluated after quantizing, on the float graph the converter builds anyway.
        shared = (
            mode in EVALUATION_MODES
            and mode in QUANTIZATION_MODES
            and plan.model.format in ("h5", "keras")
            and self.config.quantization is not None
            and self.config.quantization.quantizer == "TFlite_converter"
        )
        if mode in EVALUATION_MODES:
            predictor, evaluation = self._load_and_decode(plan, shared)
            if not shared:
                assert predictor is not None  # a kept float graph serves only a shared chain
                self._evaluate(predictor, evaluation, "quantized" if plan.model.quantized else "float")
        if plan.model.format in ("h5", "keras") and self._keras is None:
            loaded = predictor.keras_model if predictor is not None else None
            self._keras = LazyKerasModel(plan.model_path, loaded, ("evaluate",) if loaded is not None else ())
        if mode in QUANTIZATION_MODES:
            try:
                trace = predictor.trace if predictor is not None else None
                quantized, float_tflite = self._quantize(plan, self._keras, trace)
            except StquantError:
                if shared:  # still report the float accuracy, as when it is first
                    self._float_after_quantizing(predictor, evaluation, None)
                raise
            if shared:
                self._float_after_quantizing(predictor, evaluation, float_tflite)
            if evaluation is not None:
                self._evaluate(self._load_predictor(quantized), evaluation, "quantized")
                predictor = evaluation = None  # the decoded images are freed before the per-layer report
            # beside the per-layer report, which keeps one core busy (the int8 evaluation keeps all of them)
            footprint = self._aside(self._estimate_footprint, quantized)
            self._report_layers()
            with self.diagnostic("footprint"):  # the quantized model is the product; its footprint a diagnostic
                self._footprint(quantized, footprint.result())
        elif mode in BENCHMARK_MODES:
            if self._keras is not None:  # the footprint of a Keras model is that of its float conversion
                self._keras.needed_by.append("footprint")
            with self.stage("footprint"):
                self._footprint(plan.model_path, self._estimate_footprint(plan.model_path))

    # ------------------------------------------------------------ stages

    def _load_and_decode(self, plan: Plan, shared: bool) -> tuple[Predictor | None, EvaluationSet]:
        """Decode the evaluation images in worker processes while TensorFlow loads the model; return the model's
        predictor (None when a kept float graph was evaluated instead: `_evaluate_kept_float`) and the images."""
        kept = self._kept_float_tflite(plan) if shared else None
        importing = kept is not None and not self._quantized_model_kept(plan, kept)
        with ThreadPoolExecutor(1) as waiter, decoding_processes() as processes:
            decoding = waiter.submit(self._evaluation_images, plan, processes)
            evaluation = self._evaluate_kept_float(kept, plan.model_path, waiter, decoding, importing) if kept else None
            if evaluation is not None:
                return None, evaluation
            predictor = self._load_predictor(plan.model_path, fast_float=not shared)
            return predictor, decoding.result()

    def _calibration(self, plan: Plan, quiet: bool = False) -> CalibrationData:
        ds = self.config.dataset
        images = calibration_set(self.config, plan)
        if images is None:
            data = RandomCalibrationData(plan.image_spec(), ds.seed)
            if not quiet:
                log.info("no quantization_path or training_path: calibrating on %d random images", data.total)
            return data
        if not quiet:
            log.info("calibration: %d images of %s", len(images.files), images.key)
        return ImageCalibrationData(
            images.files, plan.image_spec(), images.key, {"seed": ds.seed, "split": ds.quantization_split}
        )

    def _quantize(
        self, plan: Plan, keras_model: LazyKerasModel | None = None, trace: Trace | None = None
    ) -> tuple[Path, bytes | None]:
        """Quantize; return the quantized model and the float .tflite the TFLite converter calibrated (or None).

        `keras_model`: the model of `plan.model_path`, loaded by the first stage that needs it; `trace`: its trace, made
        when its float model was converted for evaluating (its quantizer converts it again, not traced again).
        """
        from engine.evaluation.layer_report import DEFAULT_IMAGES
        from engine.quantize.cache import StatsCache
        from engine.quantize.common import FirstImages, ModelMemo

        settings = self.config.quantization
        if settings is None:  # load_config requires the section for every quantization mode
            raise ConfigError(f"quantization: section required for operation_mode {self.config.operation_mode}")
        calibration = FirstImages(self._calibration(plan), DEFAULT_IMAGES)  # kept for the per-layer report
        cache = StatsCache() if self.use_cache else None
        with self.stage("calibration"), self._decoding_ahead(plan, calibration.calibration):
            memo = ModelMemo(trace=trace) if trace is not None else None
            progress = self.progress("calibration")
            result = quantize(plan.model_path, calibration, settings, self.run_dir, progress, keras_model, cache, memo)
            # the converter's freed memory back to the OS before the evaluations and the per-layer report; its garbage
            # in reference cycles too when evaluations follow (a full collection is slow beside TensorFlow's objects,
            # and what it frees matters only to a stage that holds images)
            release_memory(collect=self.config.operation_mode in EVALUATION_MODES)
        for note in result.notes:
            log.info("%s", note)
        self.summary.quantized_model = str(Path(result.model_path).resolve())
        self.summary.calibration = Calibration(
            source=calibration.source,
            images=result.calibration_images,
            skipped=result.calibration_skipped,
            statistics="cache" if result.statistics_cached else "computed",
            quantized_model="cache" if result.quantized_cached else "converted",
        )
        self.summary.optimization = result.optimization
        self._keras3 = _keras3_scopes(result.float_model)
        if result.float_model is not None:
            self._pending_report = (result, calibration)
        return Path(result.model_path), result.float_tflite

    @contextlib.contextmanager
    def _decoding_ahead(self, plan: Plan, calibration: CalibrationData) -> Iterator[None]:
        """While the TFLite converter's first run of a Keras model imports TensorFlow and loads the model (one core),
        decode the first calibration images in worker processes on the other cores. Not when an earlier run kept the
        float graph (its statistics are cached with it), and not on the ONNX route, whose model is ready too soon
        for the workers' memory to pay off (`decoding_processes()`: none once TensorFlow is loaded)."""
        settings = self.config.quantization
        if (
            not isinstance(calibration, ImageCalibrationData)
            or settings is None
            or settings.quantizer != "TFlite_converter"
            or self._kept_float_tflite(plan)
        ):
            yield
            return
        with decoding_processes() as processes:
            if processes is not None:
                count = calibration.decode_ahead(processes)
                log.info("calibration: decoding %d images in worker processes while the model loads", count)
            yield

    def _report_layers(self) -> None:
        """The per-layer report of the quantization (a diagnostic), after the evaluations: their images are freed by
        then, so that the two do not add up in the peak memory."""
        if self._pending_report is not None:
            result, calibration = self._pending_report
            self._pending_report = None
            with self.diagnostic("layer_errors"):
                self._layer_errors(result, calibration)

    def _layer_errors(self, result: QuantResult, calibration: FirstImages) -> None:
        from engine.evaluation.layer_report import format_report, layer_report

        rows = layer_report(
            result.float_model,
            result.model_path,
            calibration,
            top=LAYER_ERRORS_KEPT,
            float_tflite=result.float_tflite,
            first=calibration.first,
        )
        self.summary.layer_errors = [LayerError(**row) for row in rows]
        log.info("per-layer error (SQNR of each quantized layer, worst first):\n%s", format_report(rows[:10]))

    def _evaluation_images(self, plan: Plan, processes: Executor | None = None) -> EvaluationSet:
        """Decode the evaluation set; `processes` (from `decoding_processes()`) decode it, then end, which frees their
        memory while the model may still be loading."""
        found = evaluation_set(self.config, plan)
        if found is None:  # load_config requires one for every evaluation mode (engine.config.modes)
            raise ConfigError(
                f"dataset: operation_mode {self.config.operation_mode} needs one of test_path, "
                "validation_path, training_path"
            )
        files, labels, name = found.files, found.labels, found.name
        with self.stage("decode_evaluation_images"):
            images, kept = decode_all(
                files,
                plan.image_spec(),
                on_progress=self.progress("decode_evaluation_images"),
                processes=processes,
                as_pixels=True,
            )
        if processes is not None:
            processes.shutdown()
        log.info("evaluation set (%s): %d images, %d unreadable", name, len(kept), len(files) - len(kept))
        return images, [labels[i] for i in kept], name, plan.image_spec()

    def _load_predictor(self, model_path: Path, fast_float: bool = True) -> Predictor:
        from engine.evaluation.predictors import load_predictor

        with self.stage(f"load_{model_path.suffix.lstrip('.')}_model"):
            return load_predictor(model_path, fast_float=fast_float)

    def _float_after_quantizing(
        self, predictor: Predictor | None, evaluation: EvaluationSet | None, float_tflite: bytes | None
    ) -> None:
        """The float model's accuracy in a shared chain: recorded now if evaluated on a kept float graph (its runtime
        names the Keras of the model, which the quantization learnt from the statistics cache), else evaluated now."""
        from engine.evaluation.predictors import float_graph_runtime, keras_runtime

        if self._kept_float is not None:
            assert self._keras is not None  # set with the kept graph's evaluation
            litert, result, set_name = self._kept_float
            self._kept_float = None
            result.runtime = float_graph_runtime(litert, keras_runtime(self._keras.keras3), for_quantization=True)
            self._record(result, set_name, "float", self._keras.path)
        elif "float" not in self._results:
            self._evaluate_float(predictor, evaluation, float_tflite)

    def _evaluate_float(
        self, predictor: Predictor | None, evaluation: EvaluationSet | None, float_tflite: bytes | None
    ) -> None:
        from engine.evaluation.predictors import KerasPredictor

        assert isinstance(predictor, KerasPredictor) and evaluation is not None  # shared: a Keras model, evaluated
        with self.stage("float_model"):  # a conversion only if the converter's float model was not kept
            predictor.run_as_tflite(float_tflite)
        self._evaluate(predictor, evaluation, "float")

    def _kept_float_tflite(self, plan: Plan) -> bytes | None:
        """The float graph the TFLite converter will calibrate, when an earlier run kept it in the statistics cache
        (read once a run: the stages before the quantization ask, and nothing stores it before then)."""
        from engine.quantize.cache import StatsCache
        from engine.quantize.tflite import kept_float_tflite

        settings = self.config.quantization
        if not self.use_cache or settings is None:
            return None
        if self._kept_graph is None:
            self._kept_graph = (kept_float_tflite(plan.model_path, settings, StatsCache()),)
        return self._kept_graph[0]

    def _quantized_model_kept(self, plan: Plan, float_model: bytes) -> bool:
        """Whether the quantization of the kept `float_model` will take its model from the statistics cache, so that it
        needs no TensorFlow."""
        from engine.quantize.cache import StatsCache
        from engine.quantize.tflite import kept_quantized

        settings = self.config.quantization
        assert settings is not None and self.use_cache  # a shared chain whose float graph is kept
        calibration = self._calibration(plan, quiet=True)
        return kept_quantized(float_model, plan.model_path, calibration, settings, StatsCache())

    def _evaluate_kept_float(
        self, content: bytes, model_path: Path, waiter: Executor, decoding: Future[EvaluationSet], importing: bool
    ) -> EvaluationSet | None:
        """Evaluate the float model on its float graph `content` kept by an earlier run (LiteRT, in `waiter`'s thread
        once the images are decoded) while TensorFlow, which the quantization needs next unless its quantized model is
        kept too (`importing` False), is imported; no stage needs the Keras model then. The result is recorded after
        the quantization (`_float_after_quantizing`). None (nothing done) if LiteRT cannot load the graph. An
        evaluation that starts during the import runs on the cores the import leaves (a thread of its own beside the
        import would slow it down); otherwise on all."""
        from engine.evaluation.predictors import TFLitePredictor

        try:
            graph = TFLitePredictor(model_path, spare_cores(), content=content)
        except InputError as error:
            log.info("%s: kept float graph not loaded (%s); evaluating the converter's", model_path.name, error)
            return None
        imported = threading.Event()

        def score() -> EvalResult:
            evaluation = decoding.result()
            predictor = TFLitePredictor(model_path, content=content) if imported.is_set() else graph
            return self._score(predictor, evaluation, "float", interruptible=True)

        if not importing:
            imported.set()
        scoring = waiter.submit(score)
        self._keras = LazyKerasModel(model_path)
        if importing:
            with self.stage("import_tensorflow"):
                import tensorflow  # noqa: F401 - imported beside the evaluation, for the quantization
            imported.set()
        evaluation, result = decoding.result(), scoring.result()
        self._kept_float = (graph.runtime, result, evaluation[2])  # the interpreter is freed before quantizing
        return evaluation

    def _evaluate(self, predictor: Predictor, evaluation: EvaluationSet, label: str) -> None:
        self._record(self._score(predictor, evaluation, label), evaluation[2], label, Path(predictor.path))

    def _score(
        self, predictor: Predictor, evaluation: EvaluationSet, label: str, interruptible: bool = False
    ) -> EvalResult:
        """Evaluate `predictor` (stage `evaluate_LABEL`). `interruptible`: in a thread, which stops at the next batch
        once Ctrl-C or SIGTERM reached the main thread."""
        from engine.evaluation.accuracy import evaluate

        images, labels, _, spec = evaluation
        name = f"evaluate_{label}"
        report = self.progress(name)

        def on_progress(done: int, total: int) -> None:
            if interruptible and self.signals.noted:
                raise KeyboardInterrupt
            report(done, total)

        with self.stage(name):
            return evaluate(predictor, images, labels, self.class_names, on_progress=on_progress, spec=spec)

    def _record(self, result: EvalResult, set_name: str, label: str, model_path: Path) -> None:
        """Put the evaluation `result` of the `label` model in the summary, the log and a confusion matrix PNG."""
        from engine.evaluation.accuracy import agreement, confusion_table, save_confusion_png

        if self.summary.accuracy is None:
            self.summary.accuracy = Accuracy(set=set_name, images=result.n)
        accuracy = self.summary.accuracy
        setattr(accuracy, label, round(result.accuracy, 2))
        accuracy.runtime[label] = result.runtime
        accuracy.per_class[label] = result.to_dict()["per_class"]
        log.info(
            "accuracy of %s model (%s, %d images, %s): %.2f %%",
            label,
            set_name,
            result.n,
            result.runtime,
            result.accuracy,
        )
        log.info("confusion matrix of the %s model:\n%s", label, confusion_table(result))
        png = self.run_dir / f"{label}_model_confusion_matrix_{set_name}.png"
        self._drawn.append(self._aside(save_confusion_png, result, png, f"{model_path.name} ({label})"))
        self._results[label] = result
        if "float" in self._results and "quantized" in self._results:
            accuracy.agreement = round(agreement(self._results["float"], self._results["quantized"]), 2)
            if accuracy.quantized is not None and accuracy.float is not None:  # both set above
                accuracy.difference = round(accuracy.quantized - accuracy.float, 2)
            log.info("top-1 agreement float vs quantized: %.2f %%", accuracy.agreement)

    def _known_board(self) -> str | None:
        """`benchmarking.board` when it names a known board."""
        from engine.footprint.boards import find_board

        board = self.config.benchmarking.board
        return board if board and find_board(board) else None

    def _estimate_footprint(self, model_path: Path) -> FootprintEstimate:
        from engine.footprint import estimate_footprint

        return estimate_footprint(model_path, board=self._known_board(), keras3=self._keras3)

    def _footprint(self, model_path: Path, footprint: FootprintEstimate) -> None:
        """Put the `footprint` of `model_path` in the summary and the log."""
        from engine.footprint.boards import board_fit, unknown_board

        board, known = self.config.benchmarking.board, self._known_board()
        fit = board_fit(known, footprint) if known else None
        if board and not known:
            message = str(unknown_board(board, "benchmarking.board"))
            log.warning("%s", message)
            self.summary.warn("footprint", message)
        self.summary.footprint = Footprint(**footprint.to_dict(), board_fit=fit)
        log.info(
            "footprint of %s: %s KiB weights flash, %s KiB activation RAM, %.3f M MACC (per layer: stquant footprint)",
            model_path.name,
            footprint.weights_flash_kib,
            footprint.activation_ram_kib,
            footprint.macc / 1e6,
        )


def quantize(
    model_path: Path,
    calibration: CalibrationData,
    settings: Quantization,
    run_dir: Path,
    on_progress: ProgressCallback | None = None,
    keras_model: KerasModel = None,
    cache: StatsCache | None = None,
    memo: ModelMemo | None = None,
) -> QuantResult:
    """Quantize with `settings.quantizer` into `run_dir/settings.export_dir`; return the `QuantResult`.

    The ONNX quantizer's intermediate models and calibration ranges go to `run_dir/intermediates/`.

    `memo`: a `ModelMemo` kept by a caller that quantizes the same `keras_model` several ways (None: no reuse)."""
    export_dir = run_dir / settings.export_dir
    if settings.quantizer == "TFlite_converter":
        from engine.quantize.tflite import quantize_tflite

        return quantize_tflite(
            model_path,
            calibration,
            settings,
            export_dir / "quantized_model.tflite",
            on_progress=on_progress,
            model=keras_model,
            cache=cache,
            memo=memo,
        )
    from engine.quantize.onnx import quantize_onnx

    return quantize_onnx(
        model_path,
        calibration,
        settings,
        export_dir,
        run_dir / INTERMEDIATES,
        on_progress=on_progress,
        model=keras_model,
        cache=cache,
        memo=memo,
    )


def run(
    config: Config, reporter: Reporter, output_dir: Path | None = None, overwrite: bool = False, use_cache: bool = True
) -> RunSummary:
    """Run the configured operation mode, then log it to MLflow; always write `run_summary.json`.

    Re-raises what stopped the run (a KeyboardInterrupt becomes `Interrupted`). `overwrite`: `output_dir`
    may hold an earlier run. `use_cache`: look up and store calibration statistics in the statistics cache.
    The run folder is locked while the run lasts and never holds an input (see `engine.run.folder`).
    """
    settings = config.quantization
    writes = (settings.export_dir, INTERMEDIATES) if settings and config.operation_mode in QUANTIZATION_MODES else ()
    with claimed_run_dir(config, output_dir, overwrite, writes) as run_dir:
        job = Run(config, reporter, run_dir, use_cache)
        job.perform(job.start, job.log_to_mlflow)  # a failed run is logged to MLflow too, an interrupted one not
    return job.summary


def _keras3_scopes(float_model: KerasModel | Path | None) -> bool:
    """Whether the quantized model's node names are a Keras 3 model's scopes: `float_model` is the Keras model
    converted, or the float ONNX file quantized (a Keras 3 conversion when its metadata says so)."""
    if float_model is None:
        return False
    if isinstance(float_model, LazyKerasModel):
        return float_model.keras3
    if not isinstance(float_model, Path):
        return is_keras3(float_model)
    import onnx

    properties = onnx.load(str(float_model), load_external_data=False).metadata_props
    return any(p.key == KERAS_METADATA and p.value == "3" for p in properties)


def release_memory(collect: bool = True) -> None:
    """Give the memory the converter freed back to the OS so later stages do not raise the peak RSS; `collect`: its
    garbage in reference cycles first (a full garbage collection)."""
    if collect:
        gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only


def portable_config(config: Config) -> YamlMap:
    """The config as given, with every path key absolute (resolved as the run resolved it), so that the
    run folder's config.yaml runs again from any working directory."""
    data = to_data(config)
    for section, key in PATH_KEYS:
        value = data.get(section, {}).get(key)
        if value:
            data[section][key] = str(config.resolve_path(value))
    uri = data.get("mlflow", {}).get("uri")
    if uri and not is_uri(uri):
        data["mlflow"]["uri"] = str(config.resolve_path(uri))
    run = data.get("hydra", {}).get("run", {})
    if run.get("dir"):
        run["dir"] = os.path.abspath(os.path.expanduser(run["dir"]))
    return data


def _log_mlflow(config: Config, summary: RunSummary, run_dir: Path) -> None:
    from engine.run.mlflow_log import log_run

    accuracy = summary.accuracy.model_dump() if summary.accuracy else {}
    metrics = {f"accuracy_{k}": v for k, v in accuracy.items() if isinstance(v, (int, float))}
    if summary.footprint:
        metrics.update(
            weights_flash_kib=summary.footprint.weights_flash_kib,
            macc=summary.footprint.macc,
            activation_ram_kib=summary.footprint.activation_ram_kib,
            params=summary.footprint.params,
        )
    params = {
        "operation_mode": config.operation_mode,
        "model_path": config.general.model_path,
        "config": str(run_dir / "config.yaml"),
    }
    log_run(mlflow_uri(config), config.general.project_name, run_dir.name, params, metrics, run_dir)


def mlflow_uri(config: Config) -> str:
    """`mlflow.uri` as given when it is a URI (http://, file:, databricks...), else the resolved folder."""
    uri = config.mlflow.uri
    return uri if is_uri(uri) else str(config.resolve_path(uri))
