"""Predictors on tiny real models (Keras 3, tf_keras, ONNX NHWC/NCHW, TFLite float/int8) and on the flowers assets."""

import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.common.errors import EngineError, InputError
from engine.data.preprocess import ImageSpec
from engine.evaluation.accuracy import agreement, evaluate
from engine.evaluation.predictors import load_predictor, predict_pixels

HW_C = (8, 8, 3)
CLASSES = 3


def _tiny_tf_keras():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential(
        [
            tf_keras.layers.Input(HW_C),
            tf_keras.layers.Conv2D(4, 3, activation="relu"),
            tf_keras.layers.GlobalAveragePooling2D(),
            tf_keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def _tiny_keras3(weights):
    import keras

    model = keras.Sequential(
        [
            keras.layers.Input(HW_C),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.set_weights(weights)
    return model


def _tiny_onnx(weights, path: Path, channels_first: bool) -> None:
    """The same network in ONNX: NCHW with a fixed batch of 1, or NHWC with a dynamic batch."""
    kernel, bias, dense_w, dense_b = weights
    initializers = [
        numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).copy(), "W"),
        numpy_helper.from_array(bias, "B"),
        numpy_helper.from_array(dense_w, "DW"),
        numpy_helper.from_array(dense_b, "DB"),
    ]
    nodes = [
        helper.make_node("Conv", ["nchw", "W", "B"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "DW", "DB"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    if channels_first:
        nodes[0].input[0] = "images"
        shape = [1, HW_C[2], HW_C[0], HW_C[1]]
    else:
        nodes.insert(0, helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]))
        shape = ["batch", *HW_C]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [shape[0], CLASSES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _tflite_int8(model, calibration: np.ndarray, input_type: str = "int8") -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = getattr(tf, input_type)
    converter.inference_output_type = tf.int8
    return converter.convert()


def _tflite_float_batch_of_one(model) -> bytes:
    """A float TFLite whose input batch is fixed to 1 (not resizable)."""
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, *HW_C], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], model)
    return converter.convert()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (20, *HW_C)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, images) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny_models")
    reference = _tiny_tf_keras()
    weights = reference.get_weights()
    paths = {
        "h5": folder / "tiny.h5",
        "keras": folder / "tiny.keras",
        "onnx_nhwc": folder / "tiny_nhwc.onnx",
        "onnx_nchw": folder / "tiny_nchw.onnx",
        "tflite_float": folder / "tiny_float_b1.tflite",
        "tflite_int8": folder / "tiny_int8.tflite",
        "tflite_uint8_input": folder / "tiny_uint8_input.tflite",
    }
    reference.save(paths["h5"])
    _tiny_keras3(weights).save(paths["keras"])
    _tiny_onnx(weights, paths["onnx_nhwc"], channels_first=False)
    _tiny_onnx(weights, paths["onnx_nchw"], channels_first=True)
    paths["tflite_float"].write_bytes(_tflite_float_batch_of_one(reference))
    paths["tflite_int8"].write_bytes(_tflite_int8(reference, images))
    full_range = np.concatenate([images, np.full((1, *HW_C), -1, np.float32), np.ones((1, *HW_C), np.float32)])
    paths["tflite_uint8_input"].write_bytes(_tflite_int8(reference, full_range, "uint8"))  # input scale 1/127.5
    return paths


@pytest.fixture(scope="module")
def keras_scores(tiny_models, images) -> np.ndarray:
    return load_predictor(tiny_models["h5"]).predict(images)


@pytest.mark.parametrize("kind", ["keras", "onnx_nhwc", "onnx_nchw", "tflite_float"])
def test_float_predictors_agree_with_tf_keras(tiny_models, images, keras_scores, kind):
    predictor = load_predictor(tiny_models[kind], num_threads=1)
    scores = predictor.predict(images)
    assert predictor.input_hw_c == HW_C
    assert scores.shape == (len(images), CLASSES) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, keras_scores, atol=1e-5)


def test_runtime_names(tiny_models):
    assert load_predictor(tiny_models["h5"]).runtime.endswith("(tf_keras)")  # a Keras 2 HDF5 file
    assert "(Keras 3." in load_predictor(tiny_models["keras"]).runtime
    assert load_predictor(tiny_models["onnx_nchw"]).runtime.endswith("CPUExecutionProvider")
    assert load_predictor(tiny_models["tflite_int8"]).runtime.startswith("LiteRT ")


def test_int8_tflite_quantizes_input_and_dequantizes_output(tiny_models, images, keras_scores):
    predictor = load_predictor(tiny_models["tflite_int8"])
    assert np.dtype(predictor.input["dtype"]) == np.int8 and np.dtype(predictor.output["dtype"]) == np.int8
    batched = predictor.predict(images)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(batched, keras_scores, atol=0.05)
    # the resized interpreter (batch 20, then 7) gives the same scores as one image at a time
    np.testing.assert_array_equal(predictor.predict(images[:7]), batched[:7])
    one_by_one = np.concatenate([predictor.predict(image[None]) for image in images])
    np.testing.assert_array_equal(one_by_one, batched)


def test_single_sigmoid_output_becomes_two_scores(tmp_path, images):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.layers.Input(HW_C), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.save(tmp_path / "binary.keras")
    p = model.predict_on_batch(images)[:, 0]
    scores = load_predictor(tmp_path / "binary.keras").predict(images)
    assert scores.shape == (len(images), 2)
    np.testing.assert_allclose(scores[:, 1], p, atol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(scores.argmax(axis=1), (p > 0.5).astype(int))


def test_wrong_image_shape_is_an_engine_error(tiny_models):
    with pytest.raises(EngineError, match=r"tiny_nhwc.onnx expects images of shape \(8, 8, 3\)"):
        load_predictor(tiny_models["onnx_nhwc"]).predict(np.zeros((2, 9, 9, 3), np.float32))


@pytest.mark.parametrize(
    "name", ["missing.h5", "broken.h5", "broken.keras", "broken.onnx", "broken.tflite", "model.pb"]
)
def test_missing_or_unreadable_models_are_input_errors(tmp_path, name):
    path = tmp_path / name
    if name != "missing.h5":
        path.write_bytes(b"this is not a model")
    with pytest.raises(InputError, match=name.replace(".", r"\.")):
        load_predictor(path)


def _flower_photos(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for index, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            with Image.open(file) as image:
                pixels = image.convert("RGB").resize((128, 128), Image.NEAREST)
            images.append(np.asarray(pixels, np.float32) / 127.5 - 1)
            labels.append(index)
    return np.stack(images), np.array(labels), classes


@pytest.mark.slow
def test_flowers_float_h5_and_st_int8_tflite(flowers_h5, flowers_st_tflite, flower_photos):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    images, labels, classes = _flower_photos(flower_photos)
    assert len(images) == 300 and classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    start = time.perf_counter()
    float_predictor = load_predictor(flowers_h5)
    assert float_predictor.runtime.endswith("(tf_keras)")  # Keras 3 cannot load ST's MobileNet .h5
    float_result = evaluate(float_predictor, images, labels, classes)
    int8_result = evaluate(load_predictor(flowers_st_tflite), images, labels, classes)
    batched_s = time.perf_counter() - start

    # independent per-image reference loops, not going through engine.evaluation.predictors
    start = time.perf_counter()
    model = tf.function(lambda x: float_predictor.keras_model(x, training=False))
    float_loop = np.array([np.argmax(model(image[None])) for image in images])
    interpreter = Interpreter(model_path=str(flowers_st_tflite))
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero_point = source["quantization"]
    int8_loop = []
    for image in images:
        pixels = np.clip(np.round(image / scale + zero_point), 0, 255).astype(np.uint8)
        interpreter.set_tensor(source["index"], pixels[None])
        interpreter.invoke()
        int8_loop.append(np.argmax(interpreter.get_tensor(target["index"])))
    loop_s = time.perf_counter() - start

    float_loop_acc = 100 * np.mean(float_loop == labels)
    int8_loop_acc = 100 * np.mean(np.array(int8_loop) == labels)
    print(
        f"\nflowers float .h5 {float_result.accuracy:.2f} % (loop {float_loop_acc:.2f}), "
        f"ST int8 .tflite {int8_result.accuracy:.2f} % (loop {int8_loop_acc:.2f}), "
        f"agreement {agreement(float_result, int8_result):.2f} %; "
        f"batched {batched_s:.1f} s incl. loading, per-image loops {loop_s:.1f} s"
    )
    assert abs(float_result.accuracy - float_loop_acc) <= 0.5
    assert abs(int8_result.accuracy - int8_loop_acc) <= 0.5
    assert float_result.accuracy > 85 and int8_result.accuracy > 85
    assert agreement(float_result, int8_result) >= 95


@pytest.mark.parametrize("name", ["tflite_int8", "tflite_uint8_input", "tflite_float", "h5", "onnx_nchw"])
def test_predict_pixels_equals_predict_on_rescaled_pixels(tiny_models, name):
    """uint8 pixels through the 256-entry input table give exactly the scores of the rescaled batch."""
    spec = ImageSpec(HW_C[0], HW_C[1], HW_C[2], "nearest", "fit", 1 / 127.5, -1)
    pixels = np.random.default_rng(3).integers(0, 256, (9, *HW_C), dtype=np.uint8)
    pixels[0, 0, 0] = [0, 127, 255]
    predictor = load_predictor(tiny_models[name], fast_float=True)
    np.testing.assert_array_equal(predict_pixels(predictor, pixels, spec), predictor.predict(spec.rescale(pixels)))
    # a uint8 input quantized with ST's rescaling takes the pixels as they are (no table look-up); no other input does
    assert getattr(predictor, "_identity", False) is (name == "tflite_uint8_input")
    # a float32 input is rescaled as is, through no table
    tflite = getattr(predictor, "converted", None) or predictor
    assert (getattr(tflite, "_table", None) is None) is (name in ("tflite_float", "h5", "onnx_nchw")), name
    if name in ("tflite_int8", "tflite_uint8_input"):
        other = ImageSpec(HW_C[0], HW_C[1], HW_C[2], "nearest", "fit", 1 / 255, 0)  # a new spec: a new table
        np.testing.assert_array_equal(
            predict_pixels(predictor, pixels, other), predictor.predict(other.rescale(pixels))
        )
        assert not predictor._identity
        with pytest.raises(EngineError, match="uint8 pixels"):
            predictor.predict_pixels(pixels.astype(np.float32), spec)


def test_tflite_falls_back_to_builtin_kernels_when_xnnpack_cannot_prepare(food101_model, litert_threads):
    """ST's EfficientNet LC int8 cannot run batched under XNNPACK; the predictor retries on LiteRT's own kernels,
    with one thread (their idle threads spin), where XNNPACK had every usable core."""
    from engine.common.threads import usable_cores
    from engine.evaluation.predictors import TFLitePredictor

    name = "st_efficientnet_lc_v1_128_tfs_int8.tflite"
    predictor = TFLitePredictor(food101_model / name)
    images = np.random.default_rng(0).random((3, 128, 128, 3), dtype=np.float32)
    batched = predictor.predict(images)
    assert predictor.runtime.endswith("(built-in kernels)")
    assert litert_threads == [(name, usable_cores()), (name, 1)]
    single = np.concatenate([predictor.predict(image[None]) for image in images])
    np.testing.assert_array_equal(batched, single)
    assert batched.shape == (3, 101)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a process allowed on two cores")
def test_tflite_threads_follow_the_cores_this_process_may_use(tiny_models, images):
    """A process allowed on fewer cores than the machine has (taskset, a container's cpuset, a pinned pytest worker)
    runs LiteRT on those, not on os.cpu_count() threads that would take turns on them."""
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        pinned = load_predictor(tiny_models["tflite_float"])
    finally:
        os.sched_setaffinity(0, allowed)
    assert pinned.threads == 1
    assert load_predictor(tiny_models["tflite_float"]).threads == len(allowed)
    np.testing.assert_array_equal(pinned.predict(images), load_predictor(tiny_models["tflite_float"]).predict(images))
