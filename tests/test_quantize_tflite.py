"""TFLite full-integer PTQ on real tiny Keras models, plus the tutorial model on real photos (slow)."""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from engine.common.errors import ConfigError, EngineError
from engine.config.schema import Quantization
from engine.quantize.tflite import float_ops_in, quantize_tflite
from tests.quant_helpers import (
    ArrayCalibration,
    PhotoCalibration,
    photo_files,
    random_images,
    save_tiny_keras_model,
)


def settings(**overrides):
    values = {
        "quantizer": "TFlite_converter",
        "quantization_type": "PTQ",
        "quantization_input_type": "int8",
        "quantization_output_type": "int8",
        "granularity": "per_channel",
        "optimize": False,
        "target_opset": 17,
        "export_dir": "quantized_models",
        "extra_options": None,
        "calibration_method": "minmax",
    }
    return Quantization(**{**values, **overrides})


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    return save_tiny_keras_model(tmp_path_factory.mktemp("models") / "tiny.keras")


def conv_weight_scales(path):
    interpreter = Interpreter(model_path=str(path))
    return [
        t["quantization_parameters"]["scales"].size
        for t in interpreter.get_tensor_details()
        if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] == 8
    ]


@pytest.mark.parametrize("io_type", ["int8", "uint8", "float"])
def test_every_op_is_int8_and_io_types_follow_settings(tiny_keras, tmp_path, io_type):
    progress = []
    out = tmp_path / "quantized_model.tflite"
    result = quantize_tflite(
        tiny_keras,
        ArrayCalibration(random_images(40)),
        settings(quantization_input_type=io_type, quantization_output_type=io_type),
        out,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert result.model_path == out and out.is_file() and result.calibration_images == 40
    assert progress[-1] == (40, 40)
    assert float_ops_in(out.read_bytes()) == []
    interpreter = Interpreter(model_path=str(out))
    dtype = {"int8": np.int8, "uint8": np.uint8, "float": np.float32}[io_type]
    assert interpreter.get_input_details()[0]["dtype"] == dtype
    assert interpreter.get_output_details()[0]["dtype"] == dtype
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops


def test_per_tensor_versus_per_channel(tiny_keras, tmp_path):
    calibration = ArrayCalibration(random_images(20))
    per_channel = quantize_tflite(tiny_keras, calibration, settings(), tmp_path / "pc.tflite").model_path
    per_tensor = quantize_tflite(
        tiny_keras, calibration, settings(granularity="per_tensor"), tmp_path / "pt.tflite"
    ).model_path
    assert conv_weight_scales(per_channel) == [8]
    assert conv_weight_scales(per_tensor) == [1]


def test_quantized_model_tracks_float_model(tiny_keras, tmp_path):
    from engine.models.load import load_keras_model

    images = random_images(64, seed=3)
    out = quantize_tflite(
        tiny_keras,
        ArrayCalibration(images),
        settings(quantization_input_type="float", quantization_output_type="float"),
        tmp_path / "q.tflite",
    ).model_path
    expected = load_keras_model(tiny_keras).predict(images, verbose=0)
    interpreter = Interpreter(model_path=str(out))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.abs(got - expected).max() < 0.05


def test_the_float_model_the_converter_calibrated_is_kept(tiny_keras, tmp_path):
    from engine.models.load import load_keras_model

    images = random_images(24, seed=4)
    model = load_keras_model(tiny_keras)
    result = quantize_tflite(tiny_keras, ArrayCalibration(images), settings(), tmp_path / "q.tflite", model=model)
    assert result.float_model is model  # the loaded model was used, not loaded again
    interpreter = Interpreter(model_content=result.float_tflite)
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.float32 and list(detail["shape_signature"]) == [-1, 16, 16, 3]
    assert {op["op_name"] for op in interpreter._get_ops_details()}.isdisjoint({"QUANTIZE", "DEQUANTIZE"})
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, model.predict(images, verbose=0), atol=1e-5)


def test_a_memo_reuses_the_trace_and_the_optimized_model_of_the_same_model(tiny_keras, tmp_path):
    """`stquant compare`: variants of one loaded model share its optimized copy and its trace through the memo."""
    from engine.models.load import load_keras_model
    from engine.quantize.common import ModelMemo

    model, memo = load_keras_model(tiny_keras), ModelMemo()
    calibration = ArrayCalibration(random_images(8, seed=5))
    first = quantize_tflite(
        tiny_keras,
        calibration,
        settings(granularity="per_tensor", optimize=True),
        tmp_path / "a.tflite",
        model=model,
        memo=memo,
    )
    trace = memo.trace
    assert trace is not None and trace[0] is first.float_model and memo.optimized.model is model
    second = quantize_tflite(
        tiny_keras,
        calibration,
        settings(granularity="per_tensor", optimize=True, quantization_input_type="uint8"),
        tmp_path / "b.tflite",
        model=model,
        memo=memo,
    )
    assert second.float_model is first.float_model and memo.trace is trace
    third = quantize_tflite(tiny_keras, calibration, settings(), tmp_path / "c.tflite", model=model, memo=memo)
    assert third.float_model is model and memo.trace is not trace and memo.trace[0] is model


def test_quantizing_keeps_no_model_alive(tiny_keras, tmp_path):
    """Without a memo nothing is kept: once the caller drops its model, neither it nor its optimized copy lives on."""
    import gc
    import weakref

    from engine.models.load import load_keras_model

    model = load_keras_model(tiny_keras)
    result = quantize_tflite(
        tiny_keras,
        ArrayCalibration(random_images(8, seed=6)),
        settings(granularity="per_tensor", optimize=True),
        tmp_path / "q.tflite",
        model=model,
    )
    alive = [weakref.ref(model), weakref.ref(result.float_model)]
    assert result.float_model is not model
    del model, result
    gc.collect()
    assert [ref() for ref in alive] == [None, None]


def test_float_ops_are_detected(tiny_keras):
    import tensorflow as tf

    from engine.models.load import load_keras_model

    model = load_keras_model(tiny_keras)
    serve = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    blob = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], serve).convert()
    assert "CONV_2D" in float_ops_in(blob)


def test_onnx_model_is_a_config_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    with pytest.raises(ConfigError, match=r"TFlite_converter cannot quantize an ONNX model.*use Onnx_quantizer"):
        quantize_tflite(path, ArrayCalibration(random_images(2)), settings(), tmp_path / "q.tflite")


def test_no_partial_file_when_conversion_fails(tiny_keras, tmp_path):
    def failing_progress(done, total):
        raise RuntimeError("calibration source broke")

    out_dir = tmp_path / "export"
    with pytest.raises(EngineError, match="TFLite conversion failed"):
        quantize_tflite(
            tiny_keras,
            ArrayCalibration(random_images(20)),
            settings(),
            out_dir / "q.tflite",
            on_progress=failing_progress,
        )
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_optimize_of_a_keras3_model_rewrites_it_exactly(tiny_keras, tmp_path):
    import keras

    result = quantize_tflite(
        tiny_keras,
        ArrayCalibration(random_images(8)),
        settings(optimize=True, granularity="per_tensor"),
        tmp_path / "q.tflite",
    )
    assert result.model_path.exists() and result.float_tflite is None
    original = keras.models.load_model(tiny_keras, compile=False)
    names = {
        kind: [layer.name for layer in original.layers if type(layer).__name__ == kind]
        for kind in ("BatchNormalization", "Conv2D")
    }
    assert result.optimization["batchnorms_folded"] == names["BatchNormalization"]
    assert result.optimization["pairs_equalized"] == [names["Conv2D"]]
    images = random_images(8, seed=1)
    np.testing.assert_allclose(
        result.float_model.predict(images, verbose=0), original.predict(images, verbose=0), rtol=1e-4, atol=1e-6
    )


@pytest.mark.slow
def test_tutorial_model_uint8_in_float_out_agrees_with_float_model(flowers_h5, flower_photos, tmp_path):
    """Calibrated on 100 photos (20 of each class), compared on all 300. The model is loaded once, by tf_keras itself:
    the quantizer starts from it (it changes nothing per-channel) and it gives the float reference."""
    from tests.shared_models import tf_keras_model

    files = photo_files(flower_photos)
    assert len(files) == 300
    reference = tf_keras_model(flowers_h5)
    out = quantize_tflite(
        flowers_h5,
        PhotoCalibration(files[::3]),
        settings(quantization_input_type="uint8", quantization_output_type="float"),
        tmp_path / "quantized_model.tflite",
        model=reference,
    ).model_path
    images = np.concatenate(list(PhotoCalibration(files).batches(100)))
    expected = reference.predict(images, verbose=0).argmax(1)
    interpreter = Interpreter(model_path=str(out))
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.uint8 and interpreter.get_output_details()[0]["dtype"] == np.float32
    scale, zero_point = detail["quantization"]
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], np.clip(np.round(images / scale + zero_point), 0, 255).astype(np.uint8))
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).argmax(1)
    agreement = float(np.mean(got == expected))
    print(f"TFLite top-1 agreement with the float model: {agreement:.2%}")
    assert agreement >= 0.985
