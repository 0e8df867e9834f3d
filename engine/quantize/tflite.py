"""Full-integer post-training quantization of a Keras model to TFLite (quantizer `TFlite_converter`).

The model is traced once as a `tf.function` with a dynamic batch dimension and converted from that
(`engine.models.trace`): no SavedModel export of every Keras layer, which is most of the time of
`from_keras_model` (and of `from_concrete_functions(..., model)`).
Calibration does not use the converter's own calibrator (which runs the float model one invocation at
a time in a logging interpreter): `engine.quantize.statistics` measures every activation range and histogram
in batches on all cores, or takes them from the statistics cache (`engine.quantize.cache`), the ranges of
`quantization.calibration_method` are derived from them (`minmax`: the calibrator's own; percentile, entropy,
mse: `engine.quantize.histograms`), and the converter's quantization step reads them from the calibrated
float model (`library_internals.quantize_with_ranges`).
Scales and zero points equal those of the converter's own calibration up to the float rounding of XNNPACK's
kernels (tests/test_statistics.py; checked on the model zoo's EfficientNet LC, MobileNet v1/v2 and ResNet-8).
`quantization.optimize`/`bias_correction` transform the Keras model first (see `engine.optimize`).
The converter builds a float32 .tflite of the model before calibrating it; that flatbuffer is kept
(`QuantResult.float_tflite`) so that a chain can evaluate the float model without converting it again.
"""

import base64
import functools
import logging
import re
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.common.atomic import write_bytes_atomic
from engine.common.errors import ConfigError, EngineError, StquantError, first_line
from engine.config.schema import Quantization
from engine.data.calibration import CalibrationData
from engine.models.files import check_model_file, model_format, stored_code_trusted
from engine.models.library_internals import (
    is_keras3,
    layer_of_node,
    quantize_float_model,
    quantize_with_ranges,
    set_per_tensor_weights,
    tflite_ops,
)
from engine.models.load import KerasModel, LazyKerasModel
from engine.models.trace import converter_for, traced
from engine.optimize import changes_model, optimize_keras
from engine.quantize.cache import (
    FLOAT_GRAPH,
    QUANTIZED_FROM,
    QUANTIZED_MODEL,
    TFLITE_STATISTICS,
    StatsCache,
    bytes_hash,
    file_hash,
    value_digest,
)
from engine.quantize.common import ModelMemo, ProgressCallback, QuantResult, nodes_of_layers, versions
from engine.quantize.histograms import BINS
from engine.quantize.statistics import (
    RULES,
    Ranges,
    Statistics,
    method_ranges,
    op_output_names,
    tensor_statistics,
    unpack,
    with_ranges,
)

log = logging.getLogger(__name__)

IO_TYPES = {"int8": "int8", "uint8": "uint8", "float": "float32"}
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def quantize_tflite(
    model_path: Path,
    calibration: CalibrationData,
    settings: Quantization,
    out_path: Path,
    on_progress: ProgressCallback | None = None,
    model: KerasModel = None,
    cache: StatsCache | None = None,
    memo: ModelMemo | None = None,
) -> QuantResult:
    """Quantize a .h5/.keras model to an int8 .tflite at `out_path` (written atomically).

    `model`: the model of `model_path` when the caller has it loaded already, or a `LazyKerasModel` (else it is
    loaded here, when needed). It is not needed when the float model the converter made of it is in `cache`, unless
    `optimize`/`bias_correction` transform it. `QuantResult.float_model`: `model` as given unless transformed
    (for `model=None`: the loaded model, or a `LazyKerasModel` when it was not needed).
    `cache`: where calibration statistics are looked up and stored (None: always measured).
    `memo`: what the caller keeps between quantizations of the same `model` (None: nothing is reused).
    """
    started = time.monotonic()
    model_path = check_model_file(model_path)
    fmt = model_format(model_path)
    if fmt == "onnx":
        raise ConfigError(
            f"quantization.quantizer: TFlite_converter cannot quantize an ONNX model ({model_path}); use Onnx_quantizer"
        )
    if fmt != "h5" and fmt != "keras":
        raise ConfigError(f"quantization.quantizer: TFlite_converter needs a Keras .h5/.keras model, not {model_path}")
    if calibration.total <= 0:
        raise EngineError("no calibration images: the TFLite converter needs at least one")
    notes: list[str] = []
    lazy = model if isinstance(model, LazyKerasModel) else LazyKerasModel(model_path, model)
    statistics = _Statistics(model_path, calibration, settings.calibration_method, cache, on_progress)
    kept = _KeptFloatModel(model_path, cache)
    stored = None if changes_model(settings) else kept.get()
    optimization: dict[str, Any] | None = None
    blob = statistics.quantized(stored.tflite, settings) if stored is not None else None
    if stored is not None:  # the Keras model is loaded only if a later stage needs it
        keras3 = lazy.known_keras3 = stored.keras3
        float_model: KerasModel = model if model is not None else lazy
        converter, unchanged = converter_without_graph() if blob is None else None, True
    else:
        original = lazy.get("optimize" if changes_model(settings) else "convert")
        float_model, optimization = optimize_keras(
            original, model_path, settings, calibration, notes, memo.optimized if memo is not None else None
        )
        keras3 = is_keras3(float_model)
        converter, unchanged = _converter_for(float_model, memo), float_model is original
        if unchanged:  # the user's model: as the caller gave it
            float_model = model if model is not None else original
    float_nodes = _float_nodes(settings.float_layers, keras3, model_path.name) if settings.float_layers else None
    if blob is None:
        blob = _convert(converter, settings, statistics, float_nodes, stored.tflite if stored is not None else None)
        if stored is None and unchanged:  # its float graph serves later runs
            kept.put(statistics.float_model, keras3)
        float_ops = float_ops_in(blob, settings.float_layers, keras3)
        if float_ops:
            raise EngineError(
                f"{model_path}: these ops cannot be quantized to int8 and would stay float: {', '.join(float_ops)}"
            )
        if unchanged:  # a run with the same float graph, statistics and settings takes it from the cache
            statistics.keep_quantized(blob, settings)
    write_bytes_atomic(Path(out_path), blob)
    seconds = time.monotonic() - started
    log.info("quantized %s -> %s (%d images, %.1f s)", model_path.name, out_path, calibration.total, seconds)
    return QuantResult(
        Path(out_path),
        notes,
        statistics.images,
        seconds,
        optimization,
        float_model,
        float_tflite=statistics.float_model if unchanged else None,  # optimized: not the user's
        statistics_cached=statistics.cached,
        calibration_skipped=statistics.skipped,
        quantized_cached=statistics.quantized_cached,
    )


class _Statistics:
    """The converter's calibration step: statistics of the float model from the cache, else measured (and
    stored), and the ranges `method` derives from them.

    Histograms cost several times the min/max, so `minmax` measures without them; an entry with histograms
    serves every method (a run that changes only the method, or `stquant compare` over methods, measures them
    once), and `minmax` also takes the min/max of such an entry.
    The quantized model the converter made with them is kept in the cache too (`quantized`, `keep_quantized`)."""

    def __init__(
        self,
        model_path: Path,
        calibration: CalibrationData,
        method: str,
        cache: StatsCache | None,
        on_progress: ProgressCallback | None,
        quiet: bool = False,
    ):
        """`quiet`: log nothing (a look-up ahead of the quantization)."""
        self.model_path, self.calibration, self.cache, self.on_progress = model_path, calibration, cache, on_progress
        self.method, self.quiet = method, quiet
        self.float_model: bytes | None = None
        self.cached = self.quantized_cached = False
        self.images = self.skipped = 0
        self._found: tuple[bytes, tuple[dict[str, Any], Any] | None] | None = None  # float model -> stored entry
        self._entry: tuple[dict[str, Any], str] | None = None  # key and value digest of the statistics used

    def __call__(self, float_model: bytes) -> bytes:
        self.float_model = float_model
        histograms = self.method != "minmax"
        model = unpack(float_model)
        found = self._stored(float_model)
        if found is None:
            statistics = tensor_statistics(model, self.calibration, histograms, self.on_progress)
            self.images, self.skipped = self.calibration.used, self.calibration.skipped
            key = self._keys(float_model)[histograms]
            if self.cache is not None and key:
                value = statistics.to_json()
                self.cache.put(key, value, self.images, self.skipped)
                self._entry = key, value_digest(value)
        else:
            key, value = found
            statistics = Statistics.from_json(value)
        return with_ranges(model, self._ranges(model, statistics, key))

    def quantized(self, float_model: bytes, settings: Quantization) -> bytes | None:
        """The quantized model kept in the cache for `float_model` calibrated by these statistics (cached too) with
        `settings`, or None; read without TensorFlow."""
        self._stored(float_model)
        key = quantized_key(float_model, self._entry, settings)
        stored = self.cache.get(key, QUANTIZED_MODEL) if self.cache is not None and key else None
        if stored is None:
            return None
        self.float_model, self.quantized_cached = float_model, True
        if not self.quiet:
            log.info("quantized model from the statistics cache: not converted again")
        return base64.b64decode(stored.value["tflite"])

    def keep_quantized(self, blob: bytes, settings: Quantization) -> None:
        """Store the quantized model `blob` the converter made of `float_model` with these statistics and `settings`."""
        key = quantized_key(self.float_model, self._entry, settings) if self.float_model is not None else None
        if self.cache is not None and key:
            self.cache.put(key, {"tflite": base64.b64encode(blob).decode("ascii")}, self.images, self.skipped)

    def _ranges(self, model: Any, statistics: Statistics, key: dict[str, Any] | None) -> Ranges:
        """`method_ranges`, derived once per cache entry, content and method while the cache lives (a search quantizes
        one float model many times; an entry stored anew with other statistics derives anew)."""
        if self.cache is None or not key or self._entry is None:
            return method_ranges(model, statistics, self.method)
        name = f"{self.method} {self._entry[1]}"
        ranges: Ranges = self.cache.derived(key, name, lambda: method_ranges(model, statistics, self.method))
        return ranges

    def _stored(self, float_model: bytes) -> tuple[dict[str, Any], Any] | None:
        """The key and value of the first cache entry of `float_model`'s statistics (with histograms, or not when the
        method needs none), read once per float model."""
        if self._found is None or self._found[0] != float_model:
            self._found = float_model, self._lookup(float_model)
        return self._found[1]

    def _lookup(self, float_model: bytes) -> tuple[dict[str, Any], Any] | None:
        keys = self._keys(float_model)
        for histograms in dict.fromkeys((self.method != "minmax", True)):
            key = keys[histograms]
            stored = self.cache.get(key, TFLITE_STATISTICS) if self.cache is not None and key else None
            if self.cache is not None and key and stored is not None:
                self.cached, self.images, self.skipped = True, stored.images, stored.skipped
                self._entry = key, value_digest(stored.value)
                if not self.quiet:
                    log.info("calibration statistics from the cache (%s)", self.cache.folder)
                return key, stored.value
        return None

    def _keys(self, float_model: bytes) -> dict[bool, dict[str, Any] | None]:
        """The cache key of the statistics with histograms (True) and without (False); None without a cache."""
        identity = self.calibration.identity() if self.cache is not None else None
        if identity is None:
            return {True: None, False: None}
        key = {
            "quantizer": "TFlite_converter",
            "rules": RULES,
            "model": file_hash(self.model_path),
            "float_graph": bytes_hash(float_model),
            "calibration": identity,
            "versions": versions("tensorflow", "ai-edge-litert"),
        }
        # with histograms, every calibration method derives from it
        return {histograms: {**key, "histogram_bins": BINS if histograms else 0} for histograms in (True, False)}


def quantized_key(
    float_model: bytes, statistics: tuple[dict[str, Any], str] | None, settings: Quantization
) -> dict[str, Any] | None:
    """The cache key of the quantized model the converter makes of `float_model` calibrated by `statistics` (the key
    and value digest of their cache entry) with `settings`: everything its bytes depend on, the libraries and the
    engine's code that prepares the converter included. None without cached statistics."""
    if statistics is None:
        return None
    key, digest = statistics
    return {
        QUANTIZED_FROM: bytes_hash(float_model),
        "statistics": key,
        "statistics_digest": digest,
        "settings": settings.model_dump(mode="json", exclude={"export_dir"}),
        "code": _code_digest(),
        "versions": versions("tensorflow", "ai-edge-litert", "flatbuffers", "numpy"),
    }


@functools.cache
def _code_digest() -> str:
    """SHA-256 of the engine's modules that prepare the converter and the ranges it quantizes with (part of the key
    of a kept quantized model: an engine that quantizes differently converts again)."""
    from engine.models import library_internals
    from engine.quantize import histograms, statistics

    modules = (sys.modules[__name__], library_internals, statistics, histograms)
    return bytes_hash(b"".join(Path(str(module.__file__)).read_bytes() for module in modules))


@dataclass(frozen=True)
class _FloatModel:
    keras3: bool
    tflite: bytes


def kept_float_tflite(model_path: Path, settings: Quantization, cache: StatsCache | None) -> bytes | None:
    """The float .tflite that `quantize_tflite` will calibrate, when the statistics cache already holds it (the
    user's model converted by an earlier run; None when absent, or when `optimize`/`bias_correction` change the
    model first): a chain evaluates the float model on it without TensorFlow."""
    if changes_model(settings):
        return None
    kept = _KeptFloatModel(model_path, cache).peek()
    return kept.tflite if kept is not None else None


def kept_quantized(
    float_model: bytes, model_path: Path, calibration: CalibrationData, settings: Quantization, cache: StatsCache
) -> bool:
    """Whether `quantize_tflite` will take its quantized model from `cache` (an earlier run kept it, with `float_model`,
    the kept float graph (`kept_float_tflite`), and the statistics it was made from): then it imports no TensorFlow."""
    statistics = _Statistics(model_path, calibration, settings.calibration_method, cache, None, quiet=True)
    return statistics.quantized(float_model, settings) is not None


class _KeptFloatModel:
    """The float .tflite the converter made of the user's Keras model, kept in the statistics cache: with it, a later
    run quantizes without loading, tracing or converting the Keras model."""

    def __init__(self, model_path: Path, cache: StatsCache | None) -> None:
        self.model_path, self.cache = model_path, cache

    def get(self) -> _FloatModel | None:
        kept = self.peek()
        if kept is not None:
            log.info("float model from the statistics cache: the Keras model is not converted again")
        return kept

    def peek(self) -> _FloatModel | None:
        """The kept float model, without logging that a quantization uses it."""
        if self.cache is None:
            return None
        stored = self.cache.get(self._key(), FLOAT_GRAPH)
        if stored is None:
            return None
        return _FloatModel(stored.value["keras3"], base64.b64decode(stored.value["tflite"]))

    def put(self, float_model: bytes | None, keras3: bool) -> None:
        if self.cache is not None and float_model is not None:
            value = {"keras3": keras3, "tflite": base64.b64encode(float_model).decode("ascii")}
            self.cache.put(self._key(), value, 0, 0)

    def _key(self) -> dict[str, Any]:
        return {
            "float_graph_of": file_hash(self.model_path),
            "trusted_code": stored_code_trusted(),  # an untrusted run must still refuse a Lambda it cannot read
            "versions": versions("tensorflow", "ai-edge-litert", "tf_keras", "keras"),
        }


def _float_nodes(layers: list[str], keras3: bool, model_name: str) -> Callable[[bytes], list[str]]:
    """The quantizer's denylist for `quantization.float_layers`: the output tensors of every op of those layers
    (`layer_of_node`, the per-layer report's and the footprint's names); ConfigError naming a layer not there."""

    def nodes(calibrated: bytes) -> list[str]:
        return nodes_of_layers(op_output_names(calibrated), layers, keras3, model_name)

    return nodes


def _convert(
    converter: Any,
    settings: Quantization,
    statistics: _Statistics,
    float_nodes: Callable[[bytes], list[str]] | None = None,
    float_model: bytes | None = None,
) -> bytes:
    """The int8 model `converter` makes, calibrated by `statistics`, with the ops `float_nodes` names kept float.

    `float_model`: the float .tflite an earlier conversion of the same model made (then `converter` has no graph)."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = getattr(tf, IO_TYPES[settings.quantization_input_type])
    converter.inference_output_type = getattr(tf, IO_TYPES[settings.quantization_output_type])
    set_per_tensor_weights(converter, settings.granularity == "per_tensor")
    quantize_with_ranges(converter, statistics, float_nodes)
    try:
        int8_model: bytes = converter.convert() if float_model is None else quantize_float_model(converter, float_model)
    except StquantError:
        raise  # from the calibration data: already one clear line
    except Exception as error:  # noqa: BLE001 - ConverterError and friends: report the ops, one line
        ops = _ops_named_in(str(error))
        detail = f"ops that cannot be converted to int8 TFLite builtins: {', '.join(ops)}" if ops else first_line(error)
        raise EngineError(f"TFLite conversion failed: {detail}") from None
    return int8_model


def _converter_for(model: KerasModel, memo: ModelMemo | None) -> Any:
    """A TFLiteConverter of the traced model; the memo's trace is reused when it is of this very model."""
    trace = traced(model, memo.trace if memo is not None else None)
    if memo is not None:
        memo.trace = trace
    return converter_for(model, trace)


def converter_without_graph() -> Any:
    """A TFLiteConverter of no TensorFlow function, for quantizing a kept float model (`quantize_float_model`)."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_concrete_functions([], tf.Module())


def _ops_named_in(message: str) -> list[str]:
    """Op names a TFLite converter error message complains about."""
    found = re.findall(r"TF Select ops: ([\w, ]+)", message)
    names = [n.strip() for group in found for n in group.split(",")]
    names += re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    names += re.findall(r"not (?:yet )?supported for op:? '?(\w+)", message)
    return sorted({n for n in names if n})


def float_ops_in(blob: bytes, float_layers: Collection[str] = (), keras3: bool = False) -> list[str]:
    """Names of the ops of a .tflite model that compute in float (input/output conversions and the ops of
    `float_layers`, kept float on purpose, excepted)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=blob)
    details = interpreter.get_tensor_details()
    dtypes = {t["index"]: t["dtype"].__name__ for t in details}
    names = {t["index"]: t["name"] for t in details}
    float_ops = set()
    for op in tflite_ops(interpreter):
        if op["op_name"] in BOUNDARY_OPS:
            continue
        if float_layers and any(layer_of_node(names[i], keras3) in float_layers for i in op["outputs"] if i >= 0):
            continue
        tensors = [i for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        if any(dtypes.get(i, "").startswith("float") for i in tensors):
            float_ops.add(op["op_name"])
    return sorted(float_ops)
