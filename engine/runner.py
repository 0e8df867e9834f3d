"""One run of an operation mode: run folder, stages, events, `run_summary.json`.

quantization: calibrate + quantize.  evaluation: evaluate `general.model_path`.  benchmarking: footprint.
chain_qb: quantize, footprint.  chain_eqe: evaluate float, quantize, evaluate quantized on the same
images (decoded once; a Keras model quantized by the TFLite converter is evaluated after quantizing, on
the float graph the converter built).  chain_eqeb: chain_eqe plus footprint. Every quantization also reports the
footprint of its output (it is cheap); `benchmarking.board` adds whether it fits that board.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
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
)
from engine.errors import InputError, Interrupted, StquantError
from engine.events import Reporter, ReporterLogHandler
from engine.images import decode_all, decoding_processes
from engine.native_output import native_stderr_to
from engine.preflight import Plan, prepare

log = logging.getLogger(__name__)
LAYER_ERRORS_KEPT = 30


class Run:
    """State of one run; `execute()` performs the stages of the configured operation mode."""

    def __init__(self, config: Config, reporter: Reporter, run_dir: Path):
        self.config = config
        self.reporter = reporter
        self.run_dir = run_dir
        self.summary: dict = {
            "status": "running",
            "operation_mode": config.operation_mode,
            "run_dir": str(run_dir),
            "model": None,
            "quantized_model": None,
            "calibration": None,
            "timings": {},
        }
        self.class_names: list[str] = []
        self._results: dict = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time a stage and announce it."""
        self.reporter.stage(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.summary["timings"][name] = round(time.perf_counter() - start, 3)

    def progress(self, stage: str):
        return lambda done, total: self.reporter.progress(stage, done, total)

    def execute(self) -> dict:
        mode = self.config.operation_mode
        with self.stage("prepare"):
            plan = prepare(self.config)
        self.summary["model"] = str(plan.model_path)
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
            self._footprint(quantized)
        elif mode in BENCHMARK_MODES:
            self._footprint(plan.model_path)
        self.summary["status"] = "ok"
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
        files, _ = dataset.shuffled(source, ds.seed)
        files = dataset.take_split(files, ds.quantization_split, "dataset.quantization_split")
        log.info("calibration: %d of %d images from %s", len(files), len(source), source.root)
        return ImageCalibrationData(files, plan.spec, key)

    def _quantize(self, plan: Plan, keras_model=None) -> tuple[Path, bytes | None]:
        """Quantize; return the quantized model and the float .tflite the TFLite converter calibrated (or None).

        `keras_model`: the model of `plan.model_path`, already loaded.
        """
        settings = self.config.quantization
        calibration = self._calibration(plan)
        export_dir = self.run_dir / settings.export_dir
        with self.stage("calibration"):
            if settings.quantizer == "TFlite_converter":
                from engine.quantize_tflite import quantize_tflite

                result = quantize_tflite(plan.model_path, calibration, settings, export_dir / "quantized_model.tflite",
                                         on_progress=self.progress("calibration"), model=keras_model)
            else:
                from engine.quantize_onnx import quantize_onnx

                result = quantize_onnx(plan.model_path, calibration, settings, export_dir, self.run_dir,
                                       on_progress=self.progress("calibration"), model=keras_model)
        for note in result.notes:
            log.info("%s", note)
        self.summary["quantized_model"] = str(Path(result.model_path).resolve())
        self.summary["calibration"] = {"source": calibration.source, "images": calibration.used,
                                       "skipped": calibration.skipped}
        self.summary["optimization"] = result.optimization
        if result.float_model is not None:
            self._layer_errors(result, calibration)
        return Path(result.model_path), result.float_tflite

    def _layer_errors(self, result, calibration) -> None:
        from engine.layer_report import format_report, layer_report

        with self.stage("layer_errors"):
            _release_memory()  # the converter's garbage first, so that this stage does not raise the peak
            rows = layer_report(result.float_model, result.model_path, calibration, top=LAYER_ERRORS_KEPT)
        self.summary["layer_errors"] = rows
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
        accuracy = self.summary.setdefault("accuracy", {"set": set_name, "images": result.n, "runtime": {}, "per_class": {}})
        accuracy[label] = round(result.accuracy, 2)
        accuracy["runtime"][label] = result.runtime
        accuracy["per_class"][label] = result.to_dict()["per_class"]
        log.info("accuracy of %s model (%s, %d images, %s): %.2f %%", label, set_name, result.n, result.runtime, result.accuracy)
        log.info("confusion matrix of the %s model:\n%s", label, confusion_table(result))
        save_confusion_png(result, self.run_dir / f"{label}_model_confusion_matrix_{set_name}.png",
                           f"{model_path.name} ({label})")
        self._results[label] = result
        if "float" in self._results and "quantized" in self._results:
            accuracy["agreement"] = round(agreement(self._results["float"], self._results["quantized"]), 2)
            accuracy["difference"] = round(accuracy["quantized"] - accuracy["float"], 2)
            log.info("top-1 agreement float vs quantized: %.2f %%", accuracy["agreement"])

    def _footprint(self, model_path: Path) -> None:
        from engine.boards import board_fit
        from engine.footprint import estimate_footprint

        with self.stage("footprint"):
            footprint = estimate_footprint(model_path)
        data = footprint.to_dict()
        data["board_fit"] = board_fit(self.config.benchmarking.board, footprint) if self.config.benchmarking.board else None
        self.summary["footprint"] = data
        log.info("footprint of %s: %s KiB weights flash, %s KiB activation RAM, %.3f M MACC (per layer: stquant footprint)",
                 model_path.name, data["weights_flash_kib"], data["activation_ram_kib"], data["macc"] / 1e6)


def run(config: Config, reporter: Reporter, output_dir: Path | None = None) -> dict:
    """Run the configured operation mode; always write `run_summary.json`; re-raise expected errors."""
    run_dir = make_run_dir(Path(output_dir) if output_dir else config.run_dir(),
                           "--output-dir" if output_dir else "hydra.run.dir")
    handlers = _attach_logging(run_dir, reporter)
    job = Run(config, reporter, run_dir)
    try:
        write_text_atomic(run_dir / "config.yaml", dump_config(config))
        log.info("operation_mode: %s, run folder: %s", config.operation_mode, run_dir)
        with native_stderr_to(run_dir / "stquant.log"):
            return job.execute()
    except KeyboardInterrupt:
        job.summary["status"] = "interrupted"
        raise Interrupted("interrupted: no partial model was kept") from None
    except StquantError as exc:
        job.summary.update(status="failed", error=str(exc))
        raise
    except Exception as exc:
        job.summary.update(status="failed", error=f"{exc.__class__.__name__}: {exc}")
        raise
    finally:
        write_text_atomic(run_dir / "run_summary.json", json.dumps(job.summary, indent=2, default=str))
        if job.summary["status"] != "running":
            _log_mlflow(config, job.summary, run_dir)
        _detach_logging(handlers)


def _release_memory() -> None:
    """Give the converter's garbage back to the OS so later stages do not raise the peak RSS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only


def make_run_dir(path: Path, key: str) -> Path:
    """Create the run folder; an unwritable location is an InputError naming the key."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".stquant_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{key}: cannot write the run folder {path} ({exc.strerror or exc.__class__.__name__})") from None
    return path.resolve()


def _attach_logging(run_dir: Path, reporter: Reporter) -> list[logging.Handler]:
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


def _detach_logging(handlers: list[logging.Handler]) -> None:
    engine_log = logging.getLogger("engine")
    for handler in handlers:
        engine_log.removeHandler(handler)
        handler.close()
    engine_log.propagate = True


def _log_mlflow(config: Config, summary: dict, run_dir: Path) -> None:
    from engine.mlflow_log import log_run

    metrics = {f"accuracy_{k}": v for k, v in (summary.get("accuracy") or {}).items() if isinstance(v, (int, float))}
    for key in ("weights_flash_kib", "activation_ram_kib", "macc", "params"):
        value = (summary.get("footprint") or {}).get(key)
        if value is not None:
            metrics[key] = value
    params = {"operation_mode": config.operation_mode, "model_path": config.general.model_path,
              "config": str(run_dir / "config.yaml")}
    log_run(str(config.resolve_path(config.mlflow.uri)), config.general.project_name, run_dir.name,
            params, metrics, run_dir)
