"""Full-integer post-training quantization of a Keras model to TFLite (quantizer `TFlite_converter`).

The model is traced once as a `tf.function` with a dynamic batch dimension and converted from that
(`engine.keras_trace`): no SavedModel export of every Keras layer, which is about 75 % of the time of
`from_keras_model` (and of `from_concrete_functions(..., model)`).
Calibration batches are streamed to the converter as they come: with a dynamic batch dimension the
calibrator accepts whole batches and its min/max statistics equal those of one image per step.
`quantization.optimize`/`bias_correction` transform the Keras model first (see `engine.optimize`).
The converter builds a float32 .tflite of the model before calibrating it; that flatbuffer is kept
(`QuantResult.float_tflite`) so that a chain can evaluate the float model without converting it again.
"""

import logging
import re
import time
from pathlib import Path
from typing import Any

from engine.atomic import write_bytes_atomic
from engine.calibration import CalibrationData
from engine.errors import ConfigError, EngineError, StquantError, first_line
from engine.keras_trace import converter_for
from engine.library_internals import keep_float_model, set_per_tensor_weights, tflite_ops
from engine.model_info import model_format
from engine.models import check_model_file, load_keras_model
from engine.optimize import optimize_keras
from engine.quant_common import ProgressCallback, QuantResult, counted_batches

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 16
IO_TYPES = {"int8": "int8", "uint8": "uint8", "float": "float32"}
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def quantize_tflite(model_path: Path, calibration: CalibrationData, settings: Any, out_path: Path,
                    on_progress: ProgressCallback | None = None, model: Any = None) -> QuantResult:
    """Quantize a .h5/.keras model to an int8 .tflite at `out_path` (written atomically).

    `model`: the model of `model_path` when the caller has it loaded already (else it is loaded here).
    """
    started = time.monotonic()
    model_path = check_model_file(model_path)
    fmt = model_format(model_path)
    if fmt == "onnx":
        raise ConfigError(f"quantization.quantizer: TFlite_converter cannot quantize an ONNX model ({model_path}); "
                          "use Onnx_quantizer")
    if fmt != "h5" and fmt != "keras":
        raise ConfigError(f"quantization.quantizer: TFlite_converter needs a Keras .h5/.keras model, not {model_path}")
    if calibration.total <= 0:
        raise EngineError("no calibration images: the TFLite converter needs at least one")
    notes: list[str] = []
    original = model if model is not None else load_keras_model(model_path)
    model, optimization = optimize_keras(original, model_path, settings, calibration, notes)
    blob, float_blob = _convert(model, calibration, settings, on_progress)
    float_ops = float_ops_in(blob)
    if float_ops:
        raise EngineError(f"{model_path}: these ops cannot be quantized to int8 and would stay float: "
                          f"{', '.join(float_ops)}")
    write_bytes_atomic(Path(out_path), blob)
    seconds = time.monotonic() - started
    log.info("quantized %s -> %s (%d images, %.1f s)", model_path.name, out_path, calibration.total, seconds)
    return QuantResult(Path(out_path), notes, calibration.total, seconds, optimization, model,
                       float_tflite=float_blob if model is original else None)  # optimized: not the user's model


def _convert(model: Any, calibration: CalibrationData, settings: Any,
             on_progress: ProgressCallback | None) -> tuple[bytes, bytes | None]:
    """(the int8 model, the float32 model the converter calibrated, or None if it could not be kept)."""
    import tensorflow as tf

    converter = converter_for(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = _io_type(tf, settings, "quantization_input_type")
    converter.inference_output_type = _io_type(tf, settings, "quantization_output_type")
    set_per_tensor_weights(converter, getattr(settings, "granularity", "per_channel") == "per_tensor")
    converter.representative_dataset = lambda: (
        [batch] for batch in counted_batches(calibration, CALIBRATION_BATCH, on_progress))
    kept = keep_float_model(converter)
    try:
        return converter.convert(), kept.get("model")
    except StquantError:
        raise  # from the calibration data: already one clear line
    except Exception as error:  # noqa: BLE001 - ConverterError and friends: report the ops, one line
        ops = _ops_named_in(str(error))
        detail = f"ops that cannot be converted to int8 TFLite builtins: {', '.join(ops)}" if ops else \
            first_line(error)
        raise EngineError(f"TFLite conversion failed: {detail}") from None


def _io_type(tf: Any, settings: Any, key: str) -> Any:
    value = getattr(settings, key, "float") or "float"
    if value not in IO_TYPES:
        raise ConfigError(f"quantization.{key}: {value!r} is not one of {', '.join(IO_TYPES)}")
    return getattr(tf, IO_TYPES[value])


def _ops_named_in(message: str) -> list[str]:
    """Op names a TFLite converter error message complains about."""
    found = re.findall(r"TF Select ops: ([\w, ]+)", message)
    names = [n.strip() for group in found for n in group.split(",")]
    names += re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    names += re.findall(r"not (?:yet )?supported for op:? '?(\w+)", message)
    return sorted(set(n for n in names if n))


def float_ops_in(blob: bytes) -> list[str]:
    """Names of the ops of a .tflite model that compute in float (input/output conversions excepted)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=blob)
    dtypes = {t["index"]: t["dtype"].__name__ for t in interpreter.get_tensor_details()}
    float_ops = set()
    for op in tflite_ops(interpreter):
        if op["op_name"] in BOUNDARY_OPS:
            continue
        tensors = [i for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        if any(dtypes.get(i, "").startswith("float") for i in tensors):
            float_ops.add(op["op_name"])
    return sorted(float_ops)

