"""Each private or unstable library API of `engine.models.library_internals`, checked against the installed releases.

A failure here names the API a TensorFlow, Keras, LiteRT or ONNX Runtime release changed.
"""

from pathlib import Path

import numpy as np
import pytest

from engine.common.errors import EngineError
from engine.models import library_internals as internals
from tests.tiny_models import tiny_onnx


def _tiny_keras(keras_name: str = "tf_keras"):
    import importlib

    keras = importlib.import_module(keras_name)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten(name="flat")(x))
    return keras.Model(inputs, outputs)


def _converter(model, per_tensor: bool | None = None):
    import tensorflow as tf

    from engine.models.trace import converter_for

    converter = converter_for(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)] for _ in range(4))
    if per_tensor is not None:
        internals.set_per_tensor_weights(converter, per_tensor)
    return converter


def _conv_weight_scales(blob: bytes) -> int:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=blob)
    return next(
        t["quantization_parameters"]["scales"].size
        for t in interpreter.get_tensor_details()
        if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] == 4
    )


@pytest.mark.parametrize(("per_tensor", "scales"), [(True, 1), (False, 4)])
def test_per_channel_switch_of_the_tflite_converter(per_tensor, scales):
    converter = _converter(_tiny_keras())
    assert hasattr(converter, internals.PER_CHANNEL_SWITCH), (
        f"TFLiteConverter.{internals.PER_CHANNEL_SWITCH} is gone: per-tensor quantization fails"
    )
    internals.set_per_tensor_weights(converter, per_tensor)
    assert _conv_weight_scales(converter.convert()) == scales, (
        f"TFLiteConverter.{internals.PER_CHANNEL_SWITCH} no longer switches per-channel weights off"
    )


def test_per_tensor_without_the_switch_fails_instead_of_quantizing_per_channel():
    without_switch = object()
    internals.set_per_tensor_weights(without_switch, False)  # per-channel: the converter's default, nothing to do
    with pytest.raises(EngineError, match=r"quantization.granularity: per_tensor needs"):
        internals.set_per_tensor_weights(without_switch, True)


def test_conversions_without_wrapping_or_stack_traces_give_tensorflows_very_bytes(monkeypatch):
    """The TFLite converter of `converter_for` freezes without wrapping the frozen GraphDef back into a concrete
    function (TensorFlow's private `_construct_concrete_function`, most of that step's time) and builds no debug info
    from the ops' Python tracebacks: float and int8 conversions are byte for byte those of TensorFlow's own steps."""
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants, error_interpolation

    from engine.models.trace import converter_for, traced

    for name in ("_FunctionConverterDataInEager", "_replace_variables_by_constants", "_construct_concrete_function"):
        assert hasattr(convert_to_constants, name), f"tensorflow convert_to_constants.{name} is gone"
    model = _tiny_keras()
    trace = traced(model)

    images = np.random.default_rng(0).uniform(-1, 1, (4, 2, 8, 8, 3)).astype(np.float32)

    def conversions(converter_of) -> list[bytes]:
        blobs = []
        for int8 in (False, True):
            converter = converter_of()
            if int8:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.representative_dataset = lambda: ([batch] for batch in images)
            blobs.append(converter.convert())
        return blobs

    own = conversions(lambda: tf.lite.TFLiteConverter.from_concrete_functions([trace[2]], trace[1]))
    assert callable(getattr(converter_for(model, trace), internals.FREEZE_STEP, None))

    def skipped(step: str):
        def called(*args, **kwargs):
            raise AssertionError(f"the conversion called {step}")

        return called

    monkeypatch.setattr(convert_to_constants, "_construct_concrete_function", skipped("_construct_concrete_function"))
    monkeypatch.setattr(error_interpolation, "create_graph_debug_info_def", skipped("create_graph_debug_info_def"))
    assert conversions(lambda: converter_for(model, trace)) == own


def _residual_keras():
    """Residual ADD, SUB and MUL of same-shape tensors (TFLite's calibrator runs them in place)."""
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="b")(a)
    x = keras.layers.Add()([a, b])
    c = keras.layers.Conv2D(4, 1, name="c")(x)
    x = keras.layers.Subtract()([x, c])
    d = keras.layers.Conv2D(4, 1, name="d")(x)
    x = keras.layers.Multiply()([d, x])
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))


def _recorded_ranges(blob: bytes) -> dict[int, tuple[float, float]]:
    model = internals.litert_schema().ModelT.InitFromPackedBuf(blob, 0)
    return {
        i: (t.quantization.min[0], t.quantization.max[0])
        for i, t in enumerate(model.subgraphs[0].tensors)
        if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min)
    }


def test_ranges_and_inplace_quirk_equal_the_converters_calibrator():
    """Our batched ranges (with `calibrator_inplace_inputs`) are exactly what TFLite's calibrator records."""
    from engine.quantize.statistics import calibrated_model, tensor_ranges
    from tests.quant_helpers import ArrayCalibration

    model = _residual_keras()
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype(np.float32)
    converter = _converter(model, per_tensor=False)
    converter.representative_dataset = lambda: ([images[i : i + 4]] for i in range(0, 8, 4))
    converter._experimental_calibrate_only = True
    theirs = _recorded_ranges(converter.convert())
    kept = {}
    converter = _converter(model, per_tensor=False)
    internals.quantize_with_ranges(converter, lambda float_model: kept.setdefault("model", float_model))
    converter.convert()
    ours = tensor_ranges(kept["model"], ArrayCalibration(images))
    assert sorted(ours) == sorted(theirs)
    for tensor, (low, high) in theirs.items():
        assert ours[tensor] == pytest.approx((low, high), rel=1e-5, abs=1e-6), f"tensor {tensor}"
    assert _recorded_ranges(calibrated_model(kept["model"], ours)) == pytest.approx(ours)


def test_inplace_inputs_rule():
    shapes = dict.fromkeys(range(6), ((1, 4), 0))
    operators = [
        ("CONV_2D", [0], [1]),
        ("CONV_2D", [1], [2]),
        ("ADD", [1, 2], [3]),
        ("MUL", [3, 3], [4]),
        ("CONV_2D", [4], [5]),
        ("SUB", [4, 5], [6]),
    ]
    assert internals.calibrator_inplace_inputs(operators, shapes, graph_io={0, 6}) == {2: 3}


def test_converter_quantizes_with_our_ranges():
    """`quantize_with_ranges`: the converter's quantization step reads the ranges we recorded, not its own."""
    from ai_edge_litert.interpreter import Interpreter

    from engine.quantize.statistics import calibrated_model, tensor_ranges
    from tests.quant_helpers import ArrayCalibration

    converter = _converter(_tiny_keras(), per_tensor=False)
    seen = {}

    def calibrate(float_model):
        seen["model"] = float_model
        ranges = tensor_ranges(float_model, ArrayCalibration(np.zeros((1, 8, 8, 3), np.float32) + 0.5))
        return calibrated_model(float_model, {**ranges, 0: (-3.0, 5.0)})  # the input's range, chosen here

    internals.quantize_with_ranges(converter, calibrate)
    interpreter = Interpreter(model_content=converter.convert())
    assert "model" in seen, f"TFLiteConverter.{internals.QUANTIZE_STEP} is no longer called"
    quantize = next(op for op in internals.tflite_ops(interpreter) if op["op_name"] == "QUANTIZE")
    scale, zero_point = interpreter.get_tensor_details()[quantize["outputs"][0]]["quantization"]
    assert scale == pytest.approx(8 / 255) and zero_point == round(-128 + 3 / (8 / 255))


def test_a_kept_float_model_quantizes_to_the_converters_very_bytes():
    """`quantize_float_model`: a converter of no graph, given the float model the converter's own conversion made,
    returns what `convert()` returns (conversion metadata included), for both weight granularities."""
    from engine.quantize.statistics import calibrated_model, tensor_ranges
    from engine.quantize.tflite import converter_without_graph
    from tests.quant_helpers import ArrayCalibration

    model, kept = _tiny_keras(), {}

    def calibrate(float_model):
        kept.setdefault("model", float_model)
        return calibrated_model(float_model, tensor_ranges(float_model, ArrayCalibration(np.full((1, 8, 8, 3), 0.5))))

    for per_tensor in (False, True):
        converter = _converter(model, per_tensor)
        internals.quantize_with_ranges(converter, calibrate)
        expected = converter.convert()
        bare = converter_without_graph()  # the same settings, no graph
        bare.optimizations = converter.optimizations
        bare.target_spec.supported_ops = converter.target_spec.supported_ops
        internals.set_per_tensor_weights(bare, per_tensor)
        internals.quantize_with_ranges(bare, calibrate)
        assert internals.quantize_float_model(bare, kept["model"]) == expected, f"per_tensor={per_tensor}"


def test_ops_of_a_litert_interpreter():
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=_converter(_tiny_keras(), per_tensor=False).convert())
    ops = internals.tflite_ops(interpreter)
    assert [op["op_name"] for op in ops] == ["QUANTIZE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "DEQUANTIZE"], (
        f"Interpreter.{internals.OPS_DETAILS} changed"
    )
    tensors = {t["index"] for t in interpreter.get_tensor_details()}
    assert all(int(i) in tensors for op in ops for i in op["outputs"])
    with pytest.raises(EngineError, match=internals.OPS_DETAILS):
        internals.tflite_ops(object())


def test_litert_flatbuffer_schema():
    schema = internals.litert_schema()
    blob = _converter(_tiny_keras(), per_tensor=False).convert()
    assert schema.Model.ModelBufferHasIdentifier(blob, 0)
    model = schema.ModelT.InitFromPackedBuf(blob, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    kinds = {names[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in model.operatorCodes}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= kinds
    assert schema.TensorType.INT8 != schema.TensorType.FLOAT32


def test_qdq_quantizer_renames_quantized_graph_outputs(tmp_path):
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    source = tiny_onnx(tmp_path / "tiny.onnx")
    quantize_static(
        str(source),
        str(tmp_path / "q.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    quantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    dequantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    output = graph.output[0].name
    source_tensor = quantized[dequantized[output]]
    assert source_tensor == output + internals.QDQ_INPUT_SUFFIX, (
        f"ONNX Runtime no longer names a quantized graph output's source {internals.QDQ_INPUT_SUFFIX!r}"
    )
    assert internals.qdq_source_tensor(source_tensor) == output


def test_ort_calibration_cache_round_trip(tmp_path):
    """ONNX Runtime's save_tensors_data / load_tensors_data: what quantize_static(calibration_cache_path=) reads."""
    from onnxruntime.quantization import CalibrationMethod, TensorsData
    from onnxruntime.quantization.calibrate import TensorData

    save, load = internals.calibration_cache_io()
    ranges = TensorsData(CalibrationMethod.MinMax, {"x": TensorData(lowest=np.float32(-1.5), highest=np.float32(2.0))})
    save(ranges, tmp_path / "cache.json")
    loaded = load(tmp_path / "cache.json")
    assert float(loaded["x"].range_value[0]) == -1.5 and float(loaded["x"].range_value[1]) == 2.0


def test_ort_minmax_calibrator_adds_a_reduce_min_and_max_output_per_tensor(tmp_path):
    """ONNX Runtime's MinMaxCalibrater adds `<tensor>_ReduceMin`, `<tensor>_ReduceMax` outputs after the model's own,
    which the streamed MinMax calibration reads; outputs named otherwise fail naming the rule."""
    import onnxruntime as ort
    from onnxruntime.quantization import MinMaxCalibrater

    calibrator = MinMaxCalibrater(tiny_onnx(tmp_path / "tiny.onnx"), augmented_model_path=str(tmp_path / "aug.onnx"))
    calibrator.augment_graph()
    session = ort.InferenceSession(str(tmp_path / "aug.onnx"), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    pairs = internals.ort_minmax_outputs(outputs, 1)
    assert len(pairs) == (len(outputs) - 1) // 2 >= 3
    assert all(low == f"{tensor}_ReduceMin" and high == f"{tensor}_ReduceMax" for tensor, low, high in pairs)
    with pytest.raises(EngineError, match=r"^onnxruntime \S+ changed the outputs of MinMaxCalibrater's"):
        internals.ort_minmax_outputs(["y", "c_ReduceMin", "c_Max"], 1)


def test_ort_histogram_calibrator_hands_each_chunk_to_our_collector(tmp_path):
    """ONNX Runtime's HistogramCalibrater runs every float activation as a graph output and gives a chunk's
    outputs to the collector set in its `collector` attribute (calibration_method: mse)."""
    model = tiny_onnx(tmp_path / "tiny.onnx")
    seen: list[dict] = []

    class Collector:
        def collect(self, outputs: dict) -> None:
            seen.append({name: [np.asarray(a).shape for a in arrays] for name, arrays in outputs.items()})

    calibrator = internals.ort_histogram_calibrator(str(model), str(tmp_path / "augmented.onnx"), Collector())
    batches = iter([np.ones((2, 3, 8, 8), np.float32), np.zeros((2, 3, 8, 8), np.float32)])

    class Reader:
        def get_next(self) -> dict | None:
            batch = next(batches, None)
            return None if batch is None else {"input": batch}

    calibrator.collect_data(Reader())
    shapes = {"input": (2, 3, 8, 8), "conv": (2, 10, 1, 1), "flat": (2, 10), "probs": (2, 10)}
    assert seen == [{name: [shape] * 2 for name, shape in shapes.items()}]


def test_tf2onnx_names_differ_only_by_their_counter(tmp_path):
    """Two conversions of one model name their activations alike once tf2onnx's counters are removed."""
    import onnx

    from engine.quantize.keras_onnx import keras_to_onnx

    model = _residual_keras()

    def names(index):
        path = keras_to_onnx(model, 17, tmp_path / f"m{index}.onnx", tmp_path / "m.h5")
        graph = onnx.load(str(path)).graph
        constants = {t.name for t in graph.initializer}
        return sorted(n for node in graph.node for n in node.output if n not in constants)

    first, second = names(0), names(1)
    assert any("__" in name for name in first), "tf2onnx no longer names tensors it makes <name>__<n>"
    stable = sorted(internals.tf2onnx_stable_name(name) for name in first)
    assert stable == sorted(internals.tf2onnx_stable_name(name) for name in second)
    assert internals.tf2onnx_stable_name("model/flatten/Reshape__12:0") == "model/flatten/Reshape:0"


def test_tf2onnx_optimizers_run_unguarded_inside_the_switch_only(tmp_path, monkeypatch):
    """tf2onnx's optimizer gets catch_errors False (no deep copy of the graph per pass) inside the switch, as
    `keras_to_onnx` converts, and its default True outside; the environment is left as it was."""
    import os

    import tensorflow as tf
    import tf2onnx
    from tf2onnx import optimizer

    from engine.quantize.keras_onnx import keras_to_onnx

    optimize_graph, seen = optimizer.optimize_graph, []

    def recording(graph, catch_errors=True, optimizers=None):
        seen.append(catch_errors)
        return optimize_graph(graph, catch_errors, optimizers)

    monkeypatch.setattr(optimizer, "optimize_graph", recording)
    monkeypatch.delenv(internals.TF2ONNX_CATCH_ERRORS, raising=False)
    model = _tiny_keras()
    serve = tf.function(lambda x: model(x))
    tf2onnx.convert.from_function(serve, input_signature=[tf.TensorSpec([None, 8, 8, 3])], opset=17)
    keras_to_onnx(model, 17, tmp_path / "m.onnx", tmp_path / "m.h5")
    assert seen == [True, False], "tf2onnx no longer reads TF2ONNX_CATCH_ERRORS as: do not catch optimizer errors"
    assert internals.TF2ONNX_CATCH_ERRORS not in os.environ
    monkeypatch.setenv(internals.TF2ONNX_CATCH_ERRORS, "kept")
    with internals.tf2onnx_optimizers_unguarded():
        assert os.environ[internals.TF2ONNX_CATCH_ERRORS] == "false"
    assert os.environ[internals.TF2ONNX_CATCH_ERRORS] == "kept"


def test_a_failing_tf2onnx_optimizer_pass_is_skipped_as_tf2onnx_skips_it(tmp_path, monkeypatch):
    """Unguarded, a failing optimizer pass raises: `keras_to_onnx` then converts with tf2onnx's guard, which skips
    the pass, so that the model converts as it did with the guard."""
    import onnx
    from tf2onnx import optimizer

    from engine.quantize.keras_onnx import keras_to_onnx

    class Failing:
        graph_been_opt = False

        def optimize(self, graph, iteration):
            raise RuntimeError("a pass that fails")

    passes = optimizer._optimizers
    monkeypatch.setattr(optimizer, "_optimizers", type(passes)({**passes, "failing": Failing}))
    path = keras_to_onnx(_tiny_keras(), 17, tmp_path / "m.onnx", tmp_path / "m.h5")
    onnx.checker.check_model(str(path))
    assert "Conv" in {node.op_type for node in onnx.load(str(path)).graph.node}


def _scopes(model) -> list[str]:
    """The layer scopes of the model's traced function (the part after the model's own scope)."""
    from engine.models.trace import serving_function

    graph = serving_function(model).get_concrete_function().graph
    return sorted({op.name.split("/")[1] for op in graph.get_operations() if op.name.count("/") >= 2})


def test_keras3_layer_scopes_map_back_to_layer_names():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv2d")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv2d_1_1")(x)  # names that TensorFlow's unique scopes collide with
    x = keras.layers.Conv2D(4, 3, name="conv2d_1")(x)
    model = keras.Model(inputs, keras.layers.Flatten(name="flat")(x))
    scopes = _scopes(model)
    assert internals.keras3_scopes_suffixed() == ("conv2d" not in scopes), (
        "Keras 3 layer scopes changed: check keras3_scopes_suffixed"
    )
    mapped = sorted(internals.keras_layer_of_scope(scope, keras3=True) for scope in scopes)
    assert mapped == ["conv2d", "conv2d_1", "conv2d_1_1", "flat"], f"scopes {scopes} no longer map to layers"


def test_tf_keras_layer_scopes_are_layer_names():
    scopes = _scopes(_tiny_keras("tf_keras"))
    assert [internals.keras_layer_of_scope(scope, keras3=False) for scope in scopes] == ["conv_a", "flat", "head"]


def test_per_layer_report_of_colliding_keras3_names(tmp_path):
    """The TFLite per-layer report names each Keras 3 layer once, by its own name."""
    import keras

    from engine.evaluation.layer_errors import tflite_layer_errors

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv2d", activation="relu")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv2d_1_1")(x)
    x = keras.layers.Conv2D(4, 3, name="conv2d_1")(x)
    model = keras.Model(inputs, keras.layers.Flatten(name="flat")(x))
    path = Path(tmp_path / "q.tflite")
    path.write_bytes(_converter(model, per_tensor=False).convert())
    images = [np.random.default_rng(1).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)]
    errors = tflite_layer_errors(model, path, images)
    assert sorted(e.layer for e in errors) == ["conv2d", "conv2d_1", "conv2d_1_1"]
    assert all(e.op == "CONV_2D" and 20 < e.sqnr_db < 80 for e in errors)
