"""One run of an operation mode: run folder, stages, events, `run_summary.json` (an `engine.run_summary.RunSummary`).

quantization: calibrate + quantize.  evaluation: evaluate `general.model_path`.  benchmarking: footprint.
chain_qb: quantize, footprint.  chain_eqe: evaluate float, quantize, evaluate quantized on the same
images (decoded once; a Keras model quantized by the TFLite converter is evaluated after quantizing, on
the float graph the converter built).  chain_eqeb: chain_eqe plus footprint. Every quantization also reports the
footprint of its output (it is cheap); `benchmarking.board` adds whether it fits that board.

The quantized model is the product: the per-layer report, its footprint and MLflow logging are diagnostics
whose failure is a warning in the summary. Nothing written before a failure or an interrupt is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine import dataset
from engine.atomic import write_text_atomic
from engine.calibration import ImageCalibrationData, RandomCalibrationData
from engine.config import (
    BENCHMARK_MODES,
    EVALUATION_MODES,
    QUANTIZATION_MODES,
    Config,
    dump_config,
    to_data,
)
from engine.errors import ConfigError, InputError, Interrupted, StquantError, first_line
from engine.events import Reporter, ReporterLogHandler
from engine.images import decode_all, decoding_processes
from engine.mlflow_log import is_uri
from engine.native_output import native_stderr_to
from engine.preflight import DATASET_KEYS, Plan, prepare
from engine.run_summary import Accuracy, Calibration, Footprint, LayerError, RunSummary

log = logging.getLogger(__name__)
LAYER_ERRORS_KEPT = 30
PATH_KEYS = (("general", "model_path"), ("dataset", "classes_file_path"), ("dataset", "prediction_path"),
             *(("dataset", key) for key in DATASET_KEYS))


class Run:
    """State of one run; `execute()` performs the stages of the configured operation mode."""

    def __init__(self, config: Config, reporter: Reporter, run_dir: Path, use_cache: bool = True):
        self.config = config
        self.reporter = reporter
        self.run_dir = run_dir
        self.use_cache = use_cache
        self.summary = RunSummary(operation_mode=config.operation_mode, run_dir=str(run_dir))
        self.class_names: list[str] = []
        self._results: dict = {}
        self._started: str | None = None  # the last stage started
        self._failed: str | None = None  # the last stage that raised (None once a diagnostic absorbed it)
        self.signals = _Signals()

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time a stage and announce it; remember it if it raises (an interrupt may land right after the event)."""
        self._started = name
        start = time.perf_counter()
        try:
            if self.signals.noted:
                raise KeyboardInterrupt
            self.reporter.stage(name)
            yield
        except BaseException:
            self._failed = name
            raise
        finally:
            self.summary.timings[name] = round(time.perf_counter() - start, 3)

    @contextlib.contextmanager
    def diagnostic(self, name: str):
        """A stage whose failure is a warning: the run goes on (an interrupt still stops it)."""
        try:
            with self.stage(name):
                yield
        except Exception as exc:  # noqa: BLE001 - any failure of a diagnostic is reported, never fatal
            self._failed = None
            message = first_line(exc)
            log.warning("%s failed (the run goes on): %s", name, message)
            self.summary.warn(name, message)

    def fail(self, exc: BaseException) -> BaseException:
        """Record how the run ended on `exc`; return the exception to raise."""
        summary = self.summary
        summary.failed_stage = summary.failed_stage or self._failed or self._started
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            summary.status, summary.error = "interrupted", "interrupted: no partial model was kept"
            return Interrupted(summary.error)
        summary.status = "failed"
        summary.error = str(exc) if isinstance(exc, StquantError) else f"{exc.__class__.__name__}: {first_line(exc)}"
        return exc

    def attempt(self, work) -> BaseException | None:
        """Run `work()`; return what stopped it (recorded in the summary), or None."""
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised by `run`
            return self.fail(exc)
        return None

    def save(self) -> None:
        """Write `run_summary.json`."""
        write_text_atomic(self.run_dir / "run_summary.json", self.summary.to_json())

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

    def progress(self, stage: str):
        return lambda done, total: self.reporter.progress(stage, done, total)

    def execute(self) -> RunSummary:
        mode = self.config.operation_mode
        with self.stage("prepare"):
            plan = prepare(self.config)
        for warning in dict.fromkeys(plan.warnings):
            log.warning("%s", warning)
            self.summary.warn("prepare", warning)
        self.summary.model = str(plan.model_path)
        self.class_names = plan.class_names or [str(i) for i in range(plan.model.output_width or 0)]
        log.info("model %s: %s input %s, %s outputs", plan.model_path.name, plan.model.format,
                 "x".join(map(str, plan.model.input_shape[1:])), plan.model.output_width)
        evaluation = predictor = None
        # A chain loads a Keras model once, for both evaluating and quantizing it. Through the TFLite converter
        # the float model is evaluated after quantizing, on the float graph the converter builds anyway.
        shared = (mode in EVALUATION_MODES and mode in QUANTIZATION_MODES and plan.model.format in ("h5", "keras")
                  and self.config.quantization.quantizer == "TFlite_converter")
        if mode in EVALUATION_MODES:
            # Decode the images in worker processes while TensorFlow loads the model.
            with ThreadPoolExecutor(1) as waiter, decoding_processes() as processes:
                decoding = waiter.submit(self._evaluation_images, plan, processes)
                predictor = self._load_predictor(plan.model_path, fast_float=not shared)
                evaluation = decoding.result()
            if not shared:
                self._evaluate(predictor, evaluation, "quantized" if plan.model.quantized else "float")
        if mode in QUANTIZATION_MODES:
            try:
                quantized, float_tflite = self._quantize(plan, getattr(predictor, "model", None))
            except StquantError:
                if shared:  # still report the float accuracy, as when it is evaluated first
                    self._evaluate_float(predictor, evaluation, None)
                raise
            if shared:
                self._evaluate_float(predictor, evaluation, float_tflite)
            if evaluation is not None:
                self._evaluate(self._load_predictor(quantized), evaluation, "quantized")
            with self.diagnostic("footprint"):  # the quantized model is the product; its footprint a diagnostic
                self._footprint(quantized)
        elif mode in BENCHMARK_MODES:
            with self.stage("footprint"):
                self._footprint(plan.model_path)
        self.summary.status = "ok"
        return self.summary

    # ------------------------------------------------------------ stages

    def _calibration(self, plan: Plan):
        ds = self.config.dataset
        source = plan.datasets.get("quantization_path") or plan.datasets.get("training_path")
        if source is None:
            data = RandomCalibrationData(plan.spec, ds.seed)
            log.info("no quantization_path or training_path: calibrating on %d random images", data.total)
            return data
        key = "dataset.quantization_path" if "quantization_path" in plan.datasets else "dataset.training_path"
        files = calibration_files(source, ds.seed, ds.quantization_split)
        log.info("calibration: %d of %d images from %s", len(files), len(source), source.root)
        return ImageCalibrationData(files, plan.spec, key, {"seed": ds.seed, "split": ds.quantization_split})

    def _quantize(self, plan: Plan, keras_model=None) -> tuple[Path, bytes | None]:
        """Quantize; return the quantized model and the float .tflite the TFLite converter calibrated (or None).

        `keras_model`: the model of `plan.model_path`, already loaded.
        """
        from engine.quantize.cache import StatsCache

        settings = self.config.quantization
        calibration = self._calibration(plan)
        cache = StatsCache() if self.use_cache else None
        with self.stage("calibration"):
            result = quantize(plan.model_path, calibration, settings, self.run_dir, self.progress("calibration"),
                              keras_model, cache)
        for note in result.notes:
            log.info("%s", note)
        self.summary.quantized_model = str(Path(result.model_path).resolve())
        self.summary.calibration = Calibration(source=calibration.source, images=result.calibration_images,
                                               skipped=result.calibration_skipped,
                                               statistics="cache" if result.statistics_cached else "computed")
        self.summary.optimization = result.optimization
        if result.float_model is not None:
            with self.diagnostic("layer_errors"):
                self._layer_errors(result, calibration)
        return Path(result.model_path), result.float_tflite

    def _layer_errors(self, result, calibration) -> None:
        from engine.layer_report import format_report, layer_report

        release_memory()  # the converter's garbage first, so that this stage does not raise the peak
        rows = layer_report(result.float_model, result.model_path, calibration, top=LAYER_ERRORS_KEPT)
        self.summary.layer_errors = [LayerError(**row) for row in rows]
        log.info("per-layer error (SQNR of each quantized layer, worst first):\n%s", format_report(rows[:10]))

    def _evaluation_images(self, plan: Plan, processes=None):
        ds = self.config.dataset
        for key in ("test_path", "validation_path"):
            if key in plan.datasets:
                data = plan.datasets[key]
                files, labels, name = data.files, data.labels, key.removesuffix("_path") + "_set"
                break
        else:
            files, labels = dataset.validation_tail(plan.datasets["training_path"], ds.validation_split, ds.seed)
            name = "validation_set"
        with self.stage("decode_evaluation_images"):
            images, kept = decode_all(files, plan.spec, on_progress=self.progress("decode_evaluation_images"),
                                      processes=processes, as_pixels=True)
        log.info("evaluation set (%s): %d images, %d unreadable", name, len(kept), len(files) - len(kept))
        return images, [labels[i] for i in kept], name, plan.spec

    def _load_predictor(self, model_path: Path, fast_float: bool = True):
        from engine.predictors import load_predictor

        with self.stage(f"load_{model_path.suffix.lstrip('.')}_model"):
            return load_predictor(model_path, fast_float=fast_float)

    def _evaluate_float(self, predictor, evaluation, float_tflite: bytes | None) -> None:
        with self.stage("float_model"):  # a conversion only if the converter's float model was not kept
            predictor.run_as_tflite(float_tflite)
        self._evaluate(predictor, evaluation, "float")

    def _evaluate(self, predictor, evaluation, label: str) -> None:
        from engine.evaluate import (
            agreement,
            confusion_table,
            evaluate,
            save_confusion_png,
        )

        images, labels, set_name, spec = evaluation
        class_names = self.class_names
        model_path = Path(predictor.path)
        with self.stage(f"evaluate_{label}"):
            result = evaluate(predictor, images, labels, class_names, on_progress=self.progress(f"evaluate_{label}"),
                              spec=spec)
        if self.summary.accuracy is None:
            self.summary.accuracy = Accuracy(set=set_name, images=result.n)
        accuracy = self.summary.accuracy
        setattr(accuracy, label, round(result.accuracy, 2))
        accuracy.runtime[label] = result.runtime
        accuracy.per_class[label] = result.to_dict()["per_class"]
        log.info("accuracy of %s model (%s, %d images, %s): %.2f %%", label, set_name, result.n, result.runtime, result.accuracy)
        log.info("confusion matrix of the %s model:\n%s", label, confusion_table(result))
        save_confusion_png(result, self.run_dir / f"{label}_model_confusion_matrix_{set_name}.png",
                           f"{model_path.name} ({label})")
        self._results[label] = result
        if "float" in self._results and "quantized" in self._results:
            accuracy.agreement = round(agreement(self._results["float"], self._results["quantized"]), 2)
            accuracy.difference = round(accuracy.quantized - accuracy.float, 2)
            log.info("top-1 agreement float vs quantized: %.2f %%", accuracy.agreement)

    def _footprint(self, model_path: Path) -> None:
        from engine.boards import board_fit, find_board, unknown_board
        from engine.footprint import estimate_footprint

        board = self.config.benchmarking.board
        known = board if board and find_board(board) else None
        footprint = estimate_footprint(model_path, board=known)
        fit = board_fit(known, footprint) if known else None
        if board and not known:
            message = str(unknown_board(board, "benchmarking.board"))
            log.warning("%s", message)
            self.summary.warn("footprint", message)
        self.summary.footprint = Footprint(**footprint.to_dict(), board_fit=fit)
        log.info("footprint of %s: %s KiB weights flash, %s KiB activation RAM, %.3f M MACC (per layer: stquant footprint)",
                 model_path.name, footprint.weights_flash_kib, footprint.activation_ram_kib, footprint.macc / 1e6)


def quantize(model_path: Path, calibration, settings, run_dir: Path, on_progress=None, keras_model=None,
             cache=None):
    """Quantize with `settings.quantizer` into `run_dir/settings.export_dir`; return the `QuantResult`."""
    export_dir = run_dir / settings.export_dir
    if settings.quantizer == "TFlite_converter":
        from engine.quantize.tflite import quantize_tflite

        return quantize_tflite(model_path, calibration, settings, export_dir / "quantized_model.tflite",
                               on_progress=on_progress, model=keras_model, cache=cache)
    from engine.quantize.onnx import quantize_onnx

    return quantize_onnx(model_path, calibration, settings, export_dir, run_dir, on_progress=on_progress,
                         model=keras_model, cache=cache)


def calibration_files(source, seed: int, split: float | None) -> list[Path]:
    """The calibration images of a class-folder dataset: shuffled with `seed`, the first `split` of them."""
    files, _ = dataset.shuffled(source, seed)
    return dataset.take_split(files, split, "dataset.quantization_split")


def run(config: Config, reporter: Reporter, output_dir: Path | None = None, overwrite: bool = False,
        use_cache: bool = True) -> RunSummary:
    """Run the configured operation mode, then log it to MLflow; always write `run_summary.json`.

    Re-raises what stopped the run (a KeyboardInterrupt becomes `Interrupted`). `overwrite`: `output_dir`
    may hold an earlier run. `use_cache`: look up and store calibration statistics in the statistics cache.
    """
    run_dir = make_run_dir(Path(output_dir), "--output-dir", overwrite) if output_dir else \
        make_unique_run_dir(config.run_dir(), "hydra.run.dir")
    handlers = attach_logging(run_dir, reporter)
    job = Run(config, reporter, run_dir, use_cache)
    try:
        with native_stderr_to(run_dir / "stquant.log"), job.signals.installed():
            error = job.attempt(job.start)
            if not isinstance(error, Interrupted):  # an interrupted run is not logged
                error = job.attempt(job.log_to_mlflow) or error
            job.signals.raising = False  # a signal from here on is only noted: the run is over
            job.save()
            reporter.result(job.summary)
    finally:
        detach_logging(handlers)
    if error is not None:
        raise error
    return job.summary


class _Signals:
    """SIGINT/SIGTERM during a run: the first raises KeyboardInterrupt (the stages stop), later ones are only
    noted, so that writing the summary is never cut short. Stages also check `noted` when they start, in case
    the KeyboardInterrupt was swallowed (raised inside a `__del__`)."""

    def __init__(self) -> None:
        self.raising = True
        self.noted = False

    def __call__(self, signum, frame) -> None:
        self.noted = True
        if self.raising:
            self.raising = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.signal(number, self) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def release_memory() -> None:
    """Give the converter's garbage back to the OS so later stages do not raise the peak RSS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only


def make_run_dir(path: Path, key: str, overwrite: bool = False) -> Path:
    """Create (or reuse) the run folder the user named; one that holds a run is refused unless `overwrite`."""
    if (path / "run_summary.json").exists() and not overwrite:
        raise ConfigError(f"{key}: {path} already holds a run (run_summary.json); "
                          "choose another folder or add --overwrite")
    _create(path, key, exist_ok=True)
    return path.resolve()


def make_unique_run_dir(path: Path, key: str) -> Path:
    """Create a new run folder: `path`, else `path_1`, `path_2`... (mkdir is atomic: two runs never share one)."""
    for index in range(10_000):
        candidate = path if index == 0 else path.with_name(f"{path.name}_{index}")
        if _create(candidate, key, exist_ok=False):
            return candidate.resolve()
    raise InputError(f"{key}: no free run folder name beside {path}")


def _create(path: Path, key: str, exist_ok: bool) -> bool:
    """mkdir `path` and check it is writable; False if it exists (and `exist_ok` is off)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(exist_ok=exist_ok)
        except FileExistsError:
            if path.is_dir():
                return False
            raise
        probe = path / ".stquant_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{key}: cannot write the run folder {path} ({exc.strerror or exc.__class__.__name__})") from None
    return True


def portable_config(config: Config) -> dict:
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


def attach_logging(run_dir: Path, reporter: Reporter) -> list[logging.Handler]:
    """Send engine logs to the run log and the reporter only (TensorFlow's root handler would repeat them)."""
    engine_log = logging.getLogger("engine")
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False
    file_handler = logging.FileHandler(run_dir / "stquant.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers = [file_handler, ReporterLogHandler(reporter)]
    for handler in handlers:
        engine_log.addHandler(handler)
    return handlers


def detach_logging(handlers: list[logging.Handler]) -> None:
    engine_log = logging.getLogger("engine")
    for handler in handlers:
        engine_log.removeHandler(handler)
        handler.close()
    engine_log.propagate = True


def _log_mlflow(config: Config, summary: RunSummary, run_dir: Path) -> None:
    from engine.mlflow_log import log_run

    accuracy = summary.accuracy.model_dump() if summary.accuracy else {}
    metrics = {f"accuracy_{k}": v for k, v in accuracy.items() if isinstance(v, (int, float))}
    if summary.footprint:
        metrics.update(weights_flash_kib=summary.footprint.weights_flash_kib, macc=summary.footprint.macc,
                       activation_ram_kib=summary.footprint.activation_ram_kib, params=summary.footprint.params)
    params = {"operation_mode": config.operation_mode, "model_path": config.general.model_path,
              "config": str(run_dir / "config.yaml")}
    log_run(mlflow_uri(config), config.general.project_name, run_dir.name, params, metrics, run_dir)


def mlflow_uri(config: Config) -> str:
    """`mlflow.uri` as given when it is a URI (http://, file:, databricks...), else the resolved folder."""
    uri = config.mlflow.uri
    return uri if is_uri(uri) else str(config.resolve_path(uri))
