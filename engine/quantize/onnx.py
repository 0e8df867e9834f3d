"""Static QDQ quantization of an ONNX (or Keras, converted with tf2onnx) model (quantizer `Onnx_quantizer`).

Steps, like the model zoo's ONNX quantizer: Keras -> ONNX at `target_opset` with an NCHW input, or
an ONNX model up-converted to `target_opset` (never downgraded); `quant_pre_process`; calibration;
`quantize_static` (QDQ, QInt8 weights and activations, symmetric weights, asymmetric activations).
One departure from the reference: an activation that is 0 on every calibration image gets zero point -128
instead of ONNX Runtime's 0 (see `_all_zero_overrides`; with 0, a dead Relu stops clamping).
`quantization.optimize` transforms a Keras model before conversion, and folds the BatchNormalization
nodes of an ONNX model (see `engine.optimize`).

Calibration is run here rather than inside `quantize_static`, and its ranges are handed over as a
calibration cache, so that images are streamed and memory stays bounded:
- MinMax: ORT's augmented graph (a ReduceMin/ReduceMax per activation) runs several batches at once, one
  core each, and its per-run ranges are folded as they come (`_minmax_ranges`: ORT's very ranges).
  With `calib_moving_average`, one `collect_data` pass one image at a time (ORT averages per-run ranges,
  so a run must be one image to match the reference).
- Entropy / percentile: ORT keeps every activation of every run until `collect_data` returns, so the
  images are fed in chunks, one `collect_data` call per chunk; ORT merges each chunk's histograms.
- MSE (ORT has no such calibrator): ORT's histogram calibrator runs the chunks as for entropy, with stquant's
  histograms in place of ORT's (`engine.quantize.histograms`, the TFLite route's); their ranges are handed over
  as MinMax ranges.
The ranges are kept in the statistics cache (`engine.quantize.cache`), keyed by the prepared float model,
the images and the method, so a run that changes only the granularity reuses them.
"""

import contextlib
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine.common.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from engine.common.errors import ConfigError, EngineError, first_line
from engine.common.threads import ordered_map, split_cores
from engine.config.schema import Quantization
from engine.data.calibration import CalibrationData
from engine.models.files import check_model_file, model_format
from engine.models.info import guess_layout, onnx_is_quantized, onnx_opset
from engine.models.library_internals import KERAS_METADATA
from engine.models.load import KerasModel, LazyKerasModel, resolved_keras_model
from engine.optimize import fold_onnx_batchnorms, optimize_keras
from engine.quantize.cache import ORT_RANGES, StatsCache, file_hash
from engine.quantize.common import (
    ModelMemo,
    ProgressCallback,
    QuantResult,
    counted_batches,
    nodes_of_layers,
    versions,
)
from engine.quantize.histograms import Histogram, method_range
from engine.quantize.keras_onnx import convert_apart, keras_to_onnx, save_onnx, tensorflow_loaded

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 4  # images in calibration runs at once: ORT's augmented model returns every activation of each one
HISTOGRAM_CHUNK_IMAGES = 32
MINMAX_RUNS = 2  # MinMax calibration runs at once (`split_cores`)
MINMAX_BATCH = 4  # images in each (memory does not grow with it: `_minmax_ranges`)


def quantize_onnx(
    model_path: Path,
    calibration: CalibrationData,
    settings: Quantization,
    export_dir: Path,
    work_dir: Path,
    on_progress: ProgressCallback | None = None,
    model: KerasModel = None,
    cache: StatsCache | None = None,
    memo: ModelMemo | None = None,
) -> QuantResult:
    """Quantize a .onnx/.h5/.keras model to `export_dir/<stem>_quant_qdq_{pc|pt}.onnx` (written atomically).

    `model`: the Keras model of `model_path` when the caller has it loaded already (else it is loaded here).
    `cache`: where calibration ranges are looked up and stored (None: always measured).
    `memo`: what the caller keeps between quantizations of the same Keras `model` (None: nothing is reused).
    """
    started = time.monotonic()
    model_path = check_model_file(model_path)
    method, opset = settings.calibration_method, settings.target_opset
    work_dir = Path(work_dir)
    notes: list[str] = []
    optimization: dict[str, Any] | None = None
    fmt = model_format(model_path)
    if fmt == "tflite":
        raise ConfigError(f"quantization.quantizer: Onnx_quantizer cannot quantize a TFLite model ({model_path})")
    if fmt in ("h5", "keras"):
        _need_calibration(calibration)
        converted = work_dir / "converted_model" / "converted_model.onnx"
        if _convert_apart(model, settings):
            if isinstance(model, LazyKerasModel):
                model.record("convert")
            source = _converted(None, opset, converted, model_path, memo)
        else:
            keras_model, optimization = optimize_keras(
                resolved_keras_model(model, model_path, "convert"),
                model_path,
                settings,
                calibration,
                notes,
                memo.optimized if memo is not None else None,
            )
            source = _converted(keras_model, opset, converted, model_path, memo)
    else:
        model = _load_onnx(model_path)
        if onnx_is_quantized(model):
            note = f"{model_path.name} is already quantized (int8/uint8 weights or QuantizeLinear nodes); returned unchanged"
            log.warning(note)
            return QuantResult(model_path, [note], 0, time.monotonic() - started)
        source = _at_least_opset(model, model_path, opset, work_dir, notes)
        if settings.optimize:
            source, optimization = fold_onnx_batchnorms(source, work_dir / f"{model_path.stem}_bn_folded.onnx", notes)
        if settings.bias_correction:
            notes.append(
                "quantization.bias_correction is only implemented for Keras models; ignored for this ONNX model"
            )
            log.warning(notes[-1])
    _need_calibration(calibration)
    suffix = "pc" if settings.granularity == "per_channel" else "pt"
    stem = source.stem if fmt in ("h5", "keras") else model_path.stem
    out_path = Path(export_dir) / f"{stem}_quant_qdq_{suffix}.onnx"
    prepared = work_dir / f"{stem}_infer.onnx"
    _pre_process(source, prepared)
    moving_average = settings.extra_options == "calib_moving_average"
    ranges = work_dir / f"{stem}_calibration_{method}.json"
    key = _cache_key(model_path, settings, calibration, method, moving_average) if cache is not None else None
    stored = cache.get(key, ORT_RANGES) if cache is not None and key else None
    text = _renamed_ranges(stored.value, prepared) if stored is not None else None
    if stored is not None and text is None:
        log.info("cached calibration ranges do not name this conversion's tensors; calibrating again")
    if cache is not None and stored is not None and text is not None:
        ranges.write_text(text, encoding="utf-8")
        images, skipped = stored.images, stored.skipped
        log.info("calibration statistics from the cache (%s)", cache.folder)
    else:
        _calibrate(prepared, calibration, method, moving_average, ranges, work_dir, on_progress)
        images, skipped = calibration.used, calibration.skipped
        if cache is not None and key:
            cache.put(key, ranges.read_text(encoding="utf-8"), images, skipped)
    excluded = _float_nodes(prepared, settings.float_layers, model_path.name)
    _quantize(prepared, out_path, ranges, method, settings.granularity == "per_channel", moving_average, excluded)
    seconds = time.monotonic() - started
    log.info("quantized %s -> %s (%d images, %s, %.1f s)", model_path.name, out_path, images, method, seconds)
    return QuantResult(
        out_path,
        notes,
        images,
        seconds,
        optimization,
        prepared,
        statistics_cached=text is not None,
        calibration_skipped=skipped,
    )


def _cache_key(
    model_path: Path, settings: Quantization, calibration: CalibrationData, method: str, moving_average: bool
) -> dict[str, Any] | None:
    """What the ranges depend on: the model file, what changes its float graph, the images, the method.
    (Not the prepared graph's bytes: tf2onnx names constants differently at every conversion.)"""
    identity = calibration.identity()
    if identity is None:
        return None
    route = {
        "target_opset": settings.target_opset,
        "optimize": settings.optimize,
        "bias_correction": settings.bias_correction,
    }
    return {
        "quantizer": "Onnx_quantizer",
        "method": method,
        "moving_average": moving_average,
        "model": file_hash(model_path),
        "float_graph": route,
        "calibration": identity,
        "versions": versions("onnxruntime", "onnx", "tf2onnx", "tensorflow"),
    }


def _renamed_ranges(stored: str, prepared: Path) -> str | None:
    """Cached ORT ranges renamed to the tensors ORT calibrates in `prepared` (its float activations), or
    None when they do not name exactly those tensors (up to tf2onnx's name counters)."""
    import json

    import onnx

    from engine.models.library_internals import tf2onnx_stable_name

    graph = onnx.load(str(prepared), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    tensors = {
        name
        for node in graph.node
        for name in [*node.input, *node.output]
        if name and name not in constants and types.get(name) == onnx.TensorProto.FLOAT
    }
    current = {tf2onnx_stable_name(name): name for name in tensors}
    try:
        ranges = json.loads(stored)
        cached = {tf2onnx_stable_name(name): value for name, value in ranges["data"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if len(current) != len(tensors) or len(cached) != len(ranges["data"]) or cached.keys() != current.keys():
        return None
    ranges["data"] = {current[name]: value for name, value in cached.items()}
    return json.dumps(ranges)


def _need_calibration(calibration: CalibrationData) -> None:
    if calibration.total <= 0:
        raise EngineError("no calibration images: the ONNX quantizer needs at least one")


def _convert_apart(model: KerasModel, settings: Quantization) -> bool:
    """Whether to load and convert the Keras file in a child process: only when nothing here needs the model loaded
    (not loaded yet, no `optimize`/`bias_correction`) and this process has no TensorFlow to spare."""
    unloaded = model is None or (isinstance(model, LazyKerasModel) and not model.loaded)
    return unloaded and not (tensorflow_loaded() or settings.optimize or settings.bias_correction)


def _converted(model: KerasModel, opset: int, out_path: Path, model_path: Path, memo: ModelMemo | None) -> Path:
    """`keras_to_onnx` of `model` (None: of the file `model_path`, in a child process: `convert_apart`), or the memo's
    conversion of the same model at this opset written to `out_path`."""
    source = model if model is not None else model_path
    last = memo.onnx if memo is not None else None
    if last is not None and last[1] == opset and (last[0] is source or (model is None and last[0] == model_path)):
        write_bytes_atomic(out_path, last[2])
        return out_path
    if model is None:
        convert_apart(model_path, opset, out_path)
    else:
        keras_to_onnx(model, opset, out_path, model_path, memo)
    if memo is not None:
        memo.onnx = (source, opset, out_path.read_bytes())
    return out_path


def _load_onnx(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception:  # noqa: BLE001 - DecodeError and others
        raise EngineError(f"{path}: not an ONNX model (cannot be parsed)") from None


def _at_least_opset(model: Any, path: Path, opset: int, work_dir: Path, notes: list[str]) -> Path:
    """The model itself if its opset >= `opset`, else a copy up-converted to `opset` in `work_dir`."""
    from onnx import version_converter

    current = onnx_opset(model) or opset
    if current >= opset:
        if current > opset:
            notes.append(f"{path.name} has opset {current} > target_opset {opset}; kept (never downgraded)")
        return path
    try:
        converted = version_converter.convert_version(model, opset)
    except Exception as error:  # noqa: BLE001 - the converter raises many types: one line naming the model
        raise EngineError(f"{path}: cannot convert opset {current} to {opset}: {first_line(error)}") from None
    out = work_dir / f"{path.stem}_opset{opset}.onnx"
    save_onnx(converted, out)
    notes.append(f"{path.name}: opset {current} converted to {opset}")
    return out


def _pre_process(source: Path, prepared: Path) -> None:
    from onnxruntime.quantization import quant_pre_process

    with atomic_path(prepared) as tmp:
        try:
            quant_pre_process(str(source), str(tmp), skip_symbolic_shape=True)
        except OSError:
            raise  # disk full...: atomic_path names `prepared` (exit 3)
        except Exception as error:  # noqa: BLE001 - any pre-processing failure: one line naming the model
            raise EngineError(f"{source}: ONNX pre-processing failed: {first_line(error)}") from None


class _BatchFeed:
    """The calibration batches, with a look-ahead so that a chunk is never started on an empty feed."""

    def __init__(self, batches: Iterator[np.ndarray]):
        self._batches = batches
        self._pending = next(batches, None)

    def has_more(self) -> bool:
        return self._pending is not None

    def next_size(self) -> int | None:
        """How many images the next batch holds (None when the feed is empty)."""
        return None if self._pending is None else len(self._pending)

    def take(self) -> np.ndarray | None:
        batch = self._pending
        if batch is not None:
            self._pending = next(self._batches, None)
        return batch

    def __iter__(self) -> Iterator[np.ndarray]:
        while (batch := self.take()) is not None:
            yield batch


class _ChunkReader:
    """A CalibrationDataReader over the next `limit` images of a feed (all of them when `limit` is None).

    A chunk ends early rather than mix batch sizes: ORT's histogram collector stacks a chunk's runs into one
    array, which fails on runs of different sizes (the last, partial batch then starts a chunk of its own).
    """

    def __init__(self, feed: _BatchFeed, input_name: str, limit: int | None):
        self._feed, self._input_name, self._limit, self._fed = feed, input_name, limit, 0
        self._size: int | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._limit is not None and (self._fed >= self._limit or self._size not in (None, self._feed.next_size())):
            return None
        batch = self._feed.take()
        if batch is None:
            return None
        self._fed += len(batch)
        self._size = len(batch)
        return {self._input_name: batch}


def _calibrate(
    prepared: Path,
    calibration: CalibrationData,
    method: str,
    moving_average: bool,
    cache: Path,
    work_dir: Path,
    on_progress: ProgressCallback | None,
) -> None:
    """Collect activation ranges with ORT's calibrator, streaming the images; save them as an ORT cache."""
    import onnx
    from onnxruntime.quantization import create_calibrator

    from engine.models.library_internals import calibration_cache_io, ort_histogram_calibrator

    save_ranges, _ = calibration_cache_io()  # before calibrating: fails at once on an ONNX Runtime without it
    graph = onnx.load(str(prepared), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    model_input = next(i for i in graph.input if i.name not in initializers)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in model_input.type.tensor_type.shape.dim]
    nchw = len(dims) == 4 and guess_layout(dims) == "NCHW"
    streamed = method == "minmax" and not moving_average
    runs, threads = split_cores(MINMAX_RUNS) if streamed else (1, 0)
    size = 1 if moving_average or dims[0] == 1 else MINMAX_BATCH if streamed else CALIBRATION_BATCH
    feed = _BatchFeed(_model_batches(calibration, nchw, size, on_progress))
    augmented = str(work_dir / f"{prepared.stem}_augmented.onnx")
    if streamed:
        ranges = _minmax_ranges(prepared, augmented, feed, model_input.name, len(graph.output), (runs, threads))
        _save_ranges(save_ranges, ranges, cache)
        return
    collector = _MseCollector() if method == "mse" else None
    if collector is not None:
        calibrator = ort_histogram_calibrator(str(prepared), augmented, collector)
    else:
        calibrator = create_calibrator(
            prepared,
            augmented_model_path=augmented,
            calibrate_method=_ort_method(method),
            extra_options={"moving_average": moving_average},
        )
    chunk = None if method == "minmax" else HISTOGRAM_CHUNK_IMAGES
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ORT's histogram collector prints a line per chunk
            while feed.has_more():
                calibrator.collect_data(_ChunkReader(feed, model_input.name, chunk))
            ranges = calibrator.compute_data() if collector is None else collector.tensors_data()
    finally:
        Path(calibrator.augmented_model_path).unlink(missing_ok=True)
    _save_ranges(save_ranges, ranges, cache)


def _save_ranges(save_ranges: Any, ranges: Any, cache: Path) -> None:
    """Write ORT's TensorsData `ranges` to `cache` with ORT's `save_ranges`, following the umask."""
    scratch = cache.with_name(f".{cache.name}.ort")  # ORT writes it 0600 (mkstemp): copied to follow the umask
    try:
        save_ranges(ranges, scratch)
        write_text_atomic(cache, scratch.read_text(encoding="utf-8"))
    finally:
        scratch.unlink(missing_ok=True)


def _minmax_ranges(
    prepared: Path, augmented: str, feed: _BatchFeed, input_name: str, model_outputs: int, split: tuple[int, int]
) -> Any:
    """ORT's MinMax ranges (TensorsData) of `prepared`, as its MinMaxCalibrater computes them: the min/max, NaN left
    out, of the ReduceMin/ReduceMax outputs its augmented graph adds for each activation, over every batch of `feed`.

    The augmented graph runs without graph optimizations, as in ORT's calibrator, but on several batches at once, each
    run on its own cores (`engine.common.threads`), in the augmented graph's node order (each reduction right after
    the op it reads; no value changes), and each run's values are folded into a running min/max instead of being kept
    until the end. Min and max do not depend on the order of the batches: the ranges are ORT's.
    `split`: (runs at once, threads per run), from `split_cores`.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, MinMaxCalibrater, TensorsData

    from engine.models.library_internals import ort_minmax_outputs

    calibrator = MinMaxCalibrater(prepared, augmented_model_path=augmented)
    runs, threads = split
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.enable_mem_pattern = False  # a planned block per run at once would add up; tensors come from one arena
    # the augmented graph's own order, each ReduceMin/ReduceMax right after the op it reads: in ORT's default order the
    # activations of a run stay allocated longer (memory grows with the batch) and are read back from further away
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    try:
        calibrator.augment_graph()
        session = ort.InferenceSession(augmented, options, providers=["CPUExecutionProvider"])
    finally:
        Path(augmented).unlink(missing_ok=True)
    outputs = ort_minmax_outputs([o.name for o in session.get_outputs()], model_outputs)
    names = [low for _, low, _ in outputs] + [high for _, _, high in outputs]

    def run(batch: np.ndarray) -> np.ndarray:
        """The run's minima, then its maxima, as one array (tensors, *the shape of ORT's values)."""
        return np.array(session.run(names, {input_name: batch}))

    folded: np.ndarray | None = None
    for values in ordered_map(run, feed, runs):
        folded = values if folded is None else _fold(folded, values, len(outputs))
    if folded is None:
        raise EngineError("no calibration images: the ONNX quantizer needs at least one")
    pairs = {tensor: (folded[i], folded[len(outputs) + i]) for i, (tensor, _, _) in enumerate(outputs)}
    return TensorsData(CalibrationMethod.MinMax, pairs)


def _fold(folded: np.ndarray, values: np.ndarray, tensors: int) -> np.ndarray:
    """Running minima (the first `tensors` rows) and maxima (the rest), in place: `fmin`/`fmax` leave NaN out, as
    ORT's `nanmin`/`nanmax` over the runs."""
    np.fmin(folded[:tensors], values[:tensors], out=folded[:tensors])
    np.fmax(folded[tensors:], values[tensors:], out=folded[tensors:])
    return folded


def _ort_method(method: str) -> Any:
    """ONNX Runtime's calibration method of `method` (mse: ranges that ORT reads as MinMax ranges)."""
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "mse": CalibrationMethod.MinMax,
    }[method]


class _MseCollector:
    """Takes the place of ONNX Runtime's HistogramCollector (`library_internals.ort_histogram_calibrator`):
    stquant's histogram and min/max of each tensor (NaN left out), and their `mse` ranges
    (`engine.quantize.histograms`, as on the TFLite route)."""

    def __init__(self) -> None:
        self.histograms: dict[str, Histogram] = {}
        self.bounds: dict[str, tuple[float, float]] = {}

    def collect(self, outputs: dict[str, list[np.ndarray]]) -> None:
        for name, runs in outputs.items():
            histogram = self.histograms.setdefault(name, Histogram())
            for run in runs:
                values = np.asarray(run).ravel()
                if values.size and np.isnan(values.min()):
                    values = values[~np.isnan(values)]
                if not values.size:
                    continue
                low, high = float(values.min()), float(values.max())
                known = self.bounds.get(name, (low, high))
                self.bounds[name] = (min(known[0], low), max(known[1], high))
                histogram.add(values, low, high)

    def tensors_data(self) -> Any:
        """ORT's TensorsData of the mse ranges (0, 0 for a tensor that was NaN on every image)."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        data = {}
        for name, histogram in self.histograms.items():
            low, high = self.bounds.get(name, (0.0, 0.0))
            bottom, top = method_range(histogram, low, high, "mse")
            data[name] = TensorData(lowest=np.array([bottom], np.float32), highest=np.array([top], np.float32))
        return TensorsData(CalibrationMethod.MinMax, data)


def _model_batches(
    calibration: CalibrationData, nchw: bool, size: int, on_progress: ProgressCallback | None
) -> Iterator[np.ndarray]:
    """Calibration batches of `size` images in the model's layout."""
    for batch in counted_batches(calibration, size, on_progress):
        yield np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) if nchw else batch


def _float_nodes(prepared: Path, layers: list[str], model_name: str) -> list[str]:
    """The nodes of `quantization.float_layers` (named as the per-layer report and the footprint name them,
    `layer_of_node`), left out of quantization; ConfigError naming a layer that is not there."""
    if not layers:
        return []
    import onnx

    model = onnx.load(str(prepared), load_external_data=False)
    keras3 = any(p.key == KERAS_METADATA and p.value == "3" for p in model.metadata_props)
    return nodes_of_layers([node.name for node in model.graph.node], layers, keras3, model_name)


def _quantize(
    prepared: Path,
    out_path: Path,
    cache: Path,
    method: str,
    per_channel: bool,
    moving_average: bool,
    excluded: list[str],
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    overrides = _all_zero_overrides(cache)
    if overrides:
        log.info(
            "%d tensors are 0 on every calibration image: scale 1, zero point -128 (%s)",
            len(overrides),
            ", ".join(sorted(overrides)),
        )
    with atomic_path(out_path) as tmp, contextlib.redirect_stdout(io.StringIO()):
        quantize_static(
            str(prepared),
            str(tmp),
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_ort_method(method),
            calibration_cache_path=str(cache),
            nodes_to_exclude=excluded,
            extra_options={
                "WeightSymmetric": True,
                "ActivationSymmetric": False,
                "CalibMovingAverage": moving_average,
                "TensorQuantOverrides": overrides,
            },
        )


def _all_zero_overrides(cache: Path) -> dict[str, list[dict[str, Any]]]:
    """`TensorQuantOverrides` giving each activation whose calibrated range is [0, 0] scale 1 and zero point -128.

    ONNX Runtime gives such a tensor scale 1 and zero point 0. It also removes each Relu/Clip whose input is
    quantized and counts on the output's QuantizeLinear to clamp at 0, which holds only when the zero point
    is the int8 minimum: a Relu that is 0 on every calibration image (a dead squeeze-excite branch of ST's
    EfficientNet LC) then passed its negative inputs on. With zero point -128 the tensor still dequantizes to exactly 0
    and negatives clamp to 0; scale 1 is TensorFlow's choice for all-zero tensors and keeps the int32 bias
    of the next layer (scaled by this scale) far from overflow.
    """
    from engine.models.library_internals import calibration_cache_io

    _, load_ranges = calibration_cache_io()
    zero = [name for name, data in load_ranges(cache).items() if not np.any(np.asarray(data.range_value))]
    return {
        name: [{"scale": np.array(1.0, np.float32), "zero_point": np.array(np.iinfo(np.int8).min, np.int8)}]
        for name in zero
    }
