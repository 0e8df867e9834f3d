"""Every private or unstable API of TensorFlow, Keras, LiteRT and ONNX Runtime the engine relies on.

Nothing else in the engine touches a private name of these libraries: it calls the functions here.
`tests/test_library_internals.py` checks each entry against the installed releases and names the API
when a release changed it. Where a library change would silently change results (per-tensor becoming
per-channel), the function raises instead of falling back. Libraries are imported inside the
functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

from engine.common.errors import EngineError

PER_CHANNEL_SWITCH = "_experimental_disable_per_channel"
QUANTIZE_STEP = "_quantize"
OPTIMIZE_STEP = "_optimize_tflite_model"
FREEZE_STEP = "_freeze_concrete_function"
OPS_DETAILS = "_get_ops_details"
CALIBRATOR_INPLACE_OPS = ("ADD", "SUB", "MUL", "DIV")
QDQ_INPUT_SUFFIX = "_QuantizeLinear_Input"
_KERAS3_SCOPE_SUFFIX = re.compile(r"_\d+$")
_TF2ONNX_COUNTER = re.compile(r"__\d+(?=:\d+$|$)")
TF2ONNX_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"


def set_per_tensor_weights(converter: Any, per_tensor: bool) -> None:
    """Per-tensor (True) or per-channel weights in a TFLiteConverter: its private
    `_experimental_disable_per_channel` switch. Without the switch per-channel is all the converter
    does, so asking for per-tensor then fails rather than silently quantizing per channel."""
    if not hasattr(converter, PER_CHANNEL_SWITCH):
        if per_tensor:
            raise EngineError(
                f"quantization.granularity: per_tensor needs TFLiteConverter.{PER_CHANNEL_SWITCH}, "
                f"which this TensorFlow {_version('tensorflow')} lacks; use per_channel"
            )
        return
    setattr(converter, PER_CHANNEL_SWITCH, per_tensor)


def quantize_with_ranges(
    converter: Any, calibrate: Callable[[bytes], bytes], float_nodes: Callable[[bytes], list[str]] | None = None
) -> None:
    """Make a TFLiteConverter quantize with ranges recorded by `calibrate(float_model) -> calibrated_model`
    instead of its own calibrator: its private `_quantize` step is replaced by what that step does after
    calibrating (`calibrator.add_intermediate_tensors`, then `convert.mlir_quantize` with the converter's
    settings). The converter's representative dataset is then never read. No fallback: fails naming the API.
    `float_nodes(calibrated_model)`: the output tensor names of the ops to keep in float (the quantizer's
    `denylisted_nodes`: dequantized inputs, float op, quantized output)."""
    from tensorflow.lite.python import convert, lite
    from tensorflow.lite.python.optimize import calibrator

    needed = [
        callable(getattr(converter, QUANTIZE_STEP, None)),
        hasattr(calibrator, "add_intermediate_tensors"),
        hasattr(convert, "mlir_quantize"),
        getattr(converter, "experimental_new_quantizer", False),
    ]
    if not all(needed):
        raise EngineError(
            f"TensorFlow {_version('tensorflow')} changed TFLiteConverter.{QUANTIZE_STEP} or "
            "convert.mlir_quantize: stquant cannot hand its calibration ranges to the converter"
        )

    def quantize(
        model: Any,
        input_type: Any,
        output_type: Any,
        activations_type: Any,
        bias_type: Any,
        allow_float: Any,
        enable_variable_quantization: Any,
        debug_options: Any,
    ) -> Any:
        """TFLiteConverter's private quantize step (its arguments are TensorFlow's own types)."""
        if activations_type != lite._dtypes.int8:  # noqa: SLF001 - int16 activations are not a stquant setting
            raise EngineError(f"TFLite quantization with {activations_type} activations is not supported")
        calibrated = calibrate(bytes(calibrator.add_intermediate_tensors(model)))
        return convert.mlir_quantize(
            calibrated,
            converter._experimental_disable_per_channel,  # noqa: SLF001 - the converter keeps its flags private
            input_data_type=input_type,
            output_data_type=output_type,
            enable_variable_quantization=enable_variable_quantization,
            disable_per_channel_for_dense_layers=converter._experimental_disable_per_channel_quantization_for_dense_layers,  # noqa: SLF001 - same
            debug_options_str=debug_options.SerializeToString(),
            denylisted_nodes=float_nodes(calibrated) if float_nodes is not None else None,
        )

    converter.representative_dataset = lambda: iter(())  # selects full-integer quantization; never read
    setattr(converter, QUANTIZE_STEP, quantize)


def quantize_float_model(converter: Any, float_model: bytes) -> bytes:
    """What `converter.convert()` returns, made from `float_model`, the float .tflite its conversion of the TensorFlow
    graph made once (after `calibrator.add_intermediate_tensors`), instead of converting the graph again: the steps
    `convert()` takes after that conversion (its private `_optimize_tflite_model`: the quantize step, buffer
    deduplication; within `_convert_and_export_metrics`: the conversion metadata). `converter`: a TFLiteConverter
    configured as for `convert()` (with `quantize_with_ranges`), of no function. No fallback: fails naming the API."""
    from tensorflow.lite.python import lite

    steps = ("_save_conversion_params_metric", "_get_base_converter_args", OPTIMIZE_STEP, "_convert_and_export_metrics")
    if not all(callable(getattr(converter, step, None)) for step in steps) or not all(
        hasattr(lite, name) for name in ("QuantizationMode", "_build_conversion_flags")
    ):
        raise EngineError(
            f"TensorFlow {_version('tensorflow')} changed TFLiteConverter.{OPTIMIZE_STEP}: stquant cannot quantize "
            "the float model kept in the statistics cache"
        )
    converter._save_conversion_params_metric()  # noqa: SLF001 - the conversion metadata's options
    mode = lite.QuantizationMode(
        converter.optimizations,
        converter.target_spec,
        converter.representative_dataset,
        None,  # no TensorFlow graph: a float model converted from a Keras model holds no training-time quantization
        converter._experimental_disable_per_channel,  # noqa: SLF001 - the converter keeps its flags private
        converter.experimental_new_dynamic_range_quantizer,
        converter._experimental_low_bit_qat,  # noqa: SLF001 - same
        converter._experimental_full_integer_quantization_bias_type,  # noqa: SLF001 - same
        converter._experimental_variable_quantization,  # noqa: SLF001 - same
        converter._experimental_strict_qdq,  # noqa: SLF001 - same
    )
    flags = {**converter._get_base_converter_args(), **mode.converter_flags()}  # noqa: SLF001 - same
    debug_options = lite._build_conversion_flags(**flags).debug_options  # noqa: SLF001 - what convert() passes

    def optimize(self: Any) -> Any:
        return getattr(self, OPTIMIZE_STEP)(float_model, mode, debug_options, quant_io=self.experimental_new_quantizer)

    return bytes(converter._convert_and_export_metrics(optimize))  # noqa: SLF001 - convert()'s metadata step


def freeze_without_wrapping(converter: Any) -> None:
    """Make a TFLiteConverter of one concrete function (`from_concrete_functions`) freeze it faster: its private
    `_freeze_concrete_function` step turns the variables into constants (TensorFlow's own
    `convert_to_constants._replace_variables_by_constants`: the very GraphDef it converts), then wraps that GraphDef
    back into a concrete function, most of the step's time, of which the conversion reads only the names, types and
    shapes of the inputs and outputs: placeholders of a scratch graph stand in for them here. The step is TensorFlow's
    own when the wrapped function would be used (Grappler passes), when a stand-in would not be named as the tensor
    it replaces, or when this TensorFlow lacks those private names (`tests/test_library_internals.py` names them)."""
    from tensorflow.python.framework import convert_to_constants

    own = getattr(converter, FREEZE_STEP, None)
    funcs = getattr(converter, "_funcs", None)
    needed = ("_FunctionConverterDataInEager", "_replace_variables_by_constants")
    if own is None or not isinstance(funcs, list) or len(funcs) != 1:
        return
    if not all(hasattr(convert_to_constants, name) for name in needed):
        return

    def freeze() -> tuple[Any, list[Any], list[Any], Any]:
        import tensorflow as tf

        if converter._grappler_config().graph_options.rewrite_options.optimizers:  # noqa: SLF001 - as convert() asks
            return own()  # type: ignore[no-any-return]
        func = funcs[0]
        inputs = [tensor for tensor in func.inputs if tensor.dtype != tf.resource]
        with tf.Graph().as_default():
            stand_ins = [tf.compat.v1.placeholder(t.dtype, t.shape, name=t.op.name) for t in [*inputs, *func.outputs]]
        if [t.name for t in stand_ins] != [t.name for t in [*inputs, *func.outputs]]:
            return own()  # type: ignore[no-any-return]
        data = convert_to_constants._FunctionConverterDataInEager(  # noqa: SLF001 - the freeze of convert()
            func=func, lower_control_flow=False, aggressive_inlining=False
        )
        graph_def, _ = convert_to_constants._replace_variables_by_constants(converter_data=data)  # noqa: SLF001 - same
        return graph_def, stand_ins[: len(inputs)], stand_ins[len(inputs) :], func

    setattr(converter, FREEZE_STEP, freeze)


class _NoStackTraces:
    """A converter's trackable object that carries an empty debug info, and keeps the function it stands for alive."""

    def __init__(self, function: Any) -> None:
        from tensorflow.core.framework.graph_debug_info_pb2 import GraphDebugInfo

        self.function = function
        self.graph_debug_info = GraphDebugInfo()


def convert_without_stack_traces(converter: Any) -> None:
    """Make a TFLiteConverter of a `tf.function` (`from_concrete_functions(funcs, function)`) convert without the
    debug info it otherwise builds from the Python traceback of every op of the graph (the converter's error messages
    then locate an op by its node name, not by the Keras source line that made it; the model made is the same, byte
    for byte). The converter takes the debug info of a trackable object that carries one (its private
    `_trackable_obj`), here an empty one; the SavedModel route, which it tries only for such objects and which skips a
    `tf.function`, is switched off (`experimental_lower_to_saved_model`)."""
    function = getattr(converter, "_trackable_obj", None)
    if function is None or not hasattr(converter, "experimental_lower_to_saved_model"):
        return
    converter.experimental_lower_to_saved_model = False
    converter._trackable_obj = _NoStackTraces(function)  # noqa: SLF001 - where the converter reads its debug info


def calibrator_inplace_inputs(
    operators: list[tuple[str, list[int], list[int]]],
    shapes: dict[int, tuple[tuple[int, ...], Any]],
    graph_io: set[int],
) -> dict[int, int]:
    """{input tensor: output tensor} whose ranges TFLite's calibrator merges.

    Its interpreter runs ADD/SUB/MUL/DIV in place (the output overwrites an input used by nothing else)
    and logs each op's inputs *after* the op ran, so such an input's recorded range also covers the
    op's output. `operators`: (op name, inputs, outputs) in execution order; `shapes`: tensor -> (shape,
    dtype); `graph_io`: the graph's inputs and outputs. The first eligible input is shared, as in
    TFLite's ArenaPlanner (an internal behaviour: the test compares with the calibrator)."""
    uses: dict[int, int] = {}
    for _, inputs, _ in operators:
        for tensor in inputs:
            uses[tensor] = uses.get(tensor, 0) + 1
    shared: dict[int, int] = {}
    for name, inputs, outputs in operators:
        if name not in CALIBRATOR_INPLACE_OPS or not outputs:
            continue
        for tensor in inputs:
            if (
                tensor >= 0
                and uses.get(tensor) == 1
                and tensor not in graph_io
                and tensor in shapes
                and shapes[tensor] == shapes.get(outputs[0])
            ):
                shared[tensor] = outputs[0]
                break
    return shared


def tflite_ops(interpreter: Any) -> list[dict[str, Any]]:
    """Each op of a LiteRT interpreter's graph ("op_name", "inputs", "outputs"): the private
    `Interpreter._get_ops_details()` (LiteRT has no public op listing). No fallback: fails naming it."""
    details = getattr(interpreter, OPS_DETAILS, None)
    if not callable(details):
        raise EngineError(
            f"LiteRT's Interpreter.{OPS_DETAILS} is gone in ai-edge-litert "
            f"{_version('ai-edge-litert')}: stquant cannot list the ops of a .tflite model"
        )
    ops: list[dict[str, Any]] = details()
    return ops


# LiteRT's generated flatbuffer object classes (`litert_schema()`) are untyped: their objects are Any here.
TfliteModel: TypeAlias = Any  # schema.ModelT
TfliteSubGraph: TypeAlias = Any  # schema.SubGraphT
TfliteTensor: TypeAlias = Any  # schema.TensorT
TfliteOperator: TypeAlias = Any  # schema.OperatorT


def litert_schema() -> Any:
    """LiteRT's generated flatbuffer schema module (`ai_edge_litert.schema_py_generated`, not a documented API)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise EngineError(
            f"ai-edge-litert {_version('ai-edge-litert')} has no schema_py_generated module: "
            "stquant cannot read .tflite files without it"
        ) from None
    return schema_py_generated


def qdq_source_tensor(name: str) -> str:
    """The float tensor a QuantizeLinear of ONNX Runtime's QDQ quantizer reads. ORT renames a tensor it
    quantizes that is also a graph output to `<name>_QuantizeLinear_Input` (an internal naming rule);
    should it change, those tensors lose their per-layer figure (the test says so)."""
    return name.removesuffix(QDQ_INPUT_SUFFIX)


def tf2onnx_stable_name(name: str) -> str:
    """A tensor name of a tf2onnx conversion without the `__<n>` counter tf2onnx appends to the names it
    makes (`utils.make_name`, a process-wide counter whose order varies between conversions of the same
    model), so that ranges cached from one conversion can be matched to the tensors of another."""
    return _TF2ONNX_COUNTER.sub("", name)


@contextlib.contextmanager
def tf2onnx_optimizers_unguarded() -> Iterator[None]:
    """tf2onnx conversions without a deep copy of the whole graph before each of its optimizer passes (kept to
    restore the graph should a pass fail; a sizeable part of converting a model). tf2onnx's `_convert_common` turns
    the copies off when the environment variable `TF2ONNX_CATCH_ERRORS` is set: it reads any value as false, "false"
    included. A failing pass then raises instead of being skipped: the caller converts again without this."""
    previous = os.environ.get(TF2ONNX_CATCH_ERRORS)
    os.environ[TF2ONNX_CATCH_ERRORS] = "false"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[TF2ONNX_CATCH_ERRORS]
        else:
            os.environ[TF2ONNX_CATCH_ERRORS] = previous


def calibration_cache_io() -> tuple[Any, Any]:
    """ONNX Runtime's `save_tensors_data(ranges, path)` and `load_tensors_data(path)`: the calibration cache
    that `quantize_static(calibration_cache_path=)` reads.

    All three are recent in ONNX Runtime (microsoft/onnxruntime#28221, 1.27); with an older release the run
    fails naming them (no fallback: the calibration is streamed outside `quantize_static` so that memory stays
    bounded, and this is how its ranges get in)."""
    import inspect

    from onnxruntime import quantization

    if (
        not (hasattr(quantization, "save_tensors_data") and hasattr(quantization, "load_tensors_data"))
        or "calibration_cache_path" not in inspect.signature(quantization.quantize_static).parameters
    ):
        raise EngineError(
            f"onnxruntime {_version('onnxruntime')} lacks save_tensors_data/load_tensors_data and "
            "quantize_static(calibration_cache_path=...), which the ONNX quantizer needs; "
            "upgrade onnxruntime"
        )
    return quantization.save_tensors_data, quantization.load_tensors_data


def ort_minmax_outputs(outputs: list[str], model_outputs: int) -> list[tuple[str, str, str]]:
    """(tensor, its ReduceMin output, its ReduceMax output) of each activation ONNX Runtime's MinMaxCalibrater
    measures, from the outputs of its augmented graph (`outputs`, after the model's own `model_outputs`): pairs
    named `<tensor>_ReduceMin`, `<tensor>_ReduceMax`, the tensor named as its `compute_data` names it (an internal
    naming rule); fails naming it when that changed."""
    added = outputs[model_outputs:]
    pairs = [(low.rpartition("_")[0], low, high) for low, high in zip(added[::2], added[1::2])]
    if len(added) % 2 or any(low != f"{t}_ReduceMin" or high != f"{t}_ReduceMax" for t, low, high in pairs):
        raise EngineError(
            f"onnxruntime {_version('onnxruntime')} changed the outputs of MinMaxCalibrater's augmented graph "
            "(expected <tensor>_ReduceMin, <tensor>_ReduceMax pairs): stquant cannot collect its MinMax ranges"
        )
    return pairs


def ort_histogram_calibrator(model_path: str, augmented_model_path: str, collector: Any) -> Any:
    """ONNX Runtime's HistogramCalibrater of `model_path` (every float activation made a graph output; each
    `collect_data(reader)` runs the reader's batches) with `collector` in place of its own HistogramCollector:
    each chunk's outputs go to `collector.collect({tensor name: [arrays]})`. Relies on its `collector`
    attribute, which it creates at the first chunk when unset; no fallback: fails naming it."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import HistogramCalibrater

    calibrator = create_calibrator(
        model_path, augmented_model_path=augmented_model_path, calibrate_method=CalibrationMethod.Entropy
    )
    if not isinstance(calibrator, HistogramCalibrater) or getattr(calibrator, "collector", False) is not None:
        Path(calibrator.augmented_model_path).unlink(missing_ok=True)
        raise EngineError(
            f"onnxruntime {_version('onnxruntime')} changed HistogramCalibrater.collector: "
            "stquant cannot collect its own histograms (calibration_method: mse)"
        )
    calibrator.collector = collector
    return calibrator


def keras_layer_of_scope(scope: str, keras3: bool) -> str:
    """The Keras layer name behind a name scope of a traced `tf.function` of the model.

    tf_keras scopes are the layer names. Keras 3 enters each layer's scope twice per call (once to
    build, once to call), so TensorFlow makes the scope unique with a `_<n>` suffix: layer `conv2d`
    becomes `conv2d_1`, layer `conv2d_1` becomes `conv2d_1_1` or `conv2d_1_3`. That suffix is removed
    when `keras3_scopes_suffixed()` finds Keras doing so (an internal behaviour of Keras 3).
    """
    if keras3 and keras3_scopes_suffixed():
        return _KERAS3_SCOPE_SUFFIX.sub("", scope)
    return scope


def layer_of_node(name: str, keras3: bool = False) -> str:
    """The model layer a converted graph node belongs to, as the model names it, else the name unchanged.

    TensorFlow names (TFLite, tf2onnx) are `model/layer/op...`: the layer is the scope after the model's
    (`model/dense/MatMul/MatMulAddFusion` -> `dense`); TFLite lists the ops fused into one with `;`, the last
    being the op's own. torch.onnx names are `/module/.../op`: the module just above the op
    (`/features/features.0/Conv` -> `features.0`). `keras3`: the scopes are a Keras 3 model's
    (`keras_layer_of_scope`)."""
    parts = name.split(";")[-1].split("/")
    if len(parts) < 3:
        return name
    scope = parts[-2] if parts[0] == "" else parts[1]
    return keras_layer_of_scope(scope, keras3) if scope else name


@functools.cache
def keras3_scopes_suffixed() -> bool:
    """Whether Keras 3 layer scopes get TensorFlow's `_<n>` uniqueness suffix in a traced function."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="probe")(inputs))
    graph = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([None, 2], tf.float32)).graph
    scopes = {part for op in graph.get_operations() for part in op.name.split("/")[:-1]}
    if "probe" in scopes:
        return False
    if "probe_1" in scopes:
        return True
    raise EngineError(
        f"Keras {keras.__version__} names layer scopes in a traced function neither 'probe' nor "
        f"'probe_1' (found {sorted(scopes)}): per-layer errors cannot name Keras 3 layers"
    )


KERAS_METADATA = "stquant.keras_version"  # ONNX metadata of a converted Keras model: "3" (Keras 3) or "2" (tf_keras)


def is_keras3(model: Any) -> bool:
    """True for a Keras 3 model, False for a tf_keras (Keras 2) one."""
    return not type(model).__module__.startswith("tf_keras")


def keras_of(model: Any) -> Any:
    """The Keras package of `model`: `keras` (Keras 3) or `tf_keras`."""
    if is_keras3(model):
        import keras
    else:
        import tf_keras as keras
    return keras


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"
