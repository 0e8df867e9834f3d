"""Data-free optimization before per-tensor quantization: float equivalence, BN folding, report."""

import importlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf
import tf_keras
from onnx import TensorProto, helper, numpy_helper

from engine.config.schema import Quantization
from engine.optimize.keras import correct_biases, optimize_for_per_tensor
from engine.optimize.onnx import fold_batchnorm
from tests.shared_models import tf_keras_model

KERASES = ["tf_keras", "keras"]


def _randomize_batchnorms(model, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [rng.uniform(0.2, 3, n), rng.normal(0, 2, n), rng.normal(0, 1, n), rng.uniform(0.1, 4, n)]
            )


def _mobilenet_block(keras_name: str = "tf_keras"):
    """conv-BN-ReLU6 -> pad -> depthwise-BN-ReLU6 -> pointwise-BN -> residual-free head, with skewed ranges,
    built with tf_keras or Keras 3."""
    keras = importlib.import_module(keras_name)
    rng = np.random.default_rng(0)
    layers = keras.layers
    seeded = keras.initializers.GlorotUniform  # the default initializer, seeded: the same block whatever ran before
    x = inputs = layers.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, use_bias=False, padding="same", kernel_initializer=seeded(1))(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = layers.DepthwiseConv2D(3, strides=2, use_bias=False, depthwise_initializer=seeded(2))(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(12, 1, use_bias=False, kernel_initializer=seeded(3))(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(6, 1, kernel_initializer=seeded(4))(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax", kernel_initializer=seeded(5))(x)
    model = keras.Model(inputs, outputs)
    _randomize_batchnorms(model, rng)
    dw = next(layer for layer in model.layers if isinstance(layer, layers.DepthwiseConv2D))
    kernel = dw.get_weights()[0]
    dw.set_weights([kernel * np.array([50.0, 0.02, 1, 1, 8, 0.1, 1, 1]).reshape(1, 1, 8, 1)])
    return model


@pytest.mark.parametrize("keras_name", KERASES)
def test_optimize_keeps_float_outputs_and_reports(keras_name):
    model = _mobilenet_block(keras_name)
    optimized, report = optimize_for_per_tensor(model)
    assert type(optimized).__module__.split(".")[0] == keras_name
    x = np.random.default_rng(1).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(optimized.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    assert len(report.batchnorms_folded) == 3
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in optimized.layers)
    assert len(report.pairs_equalized) == 3
    assert len(report.relu6_replaced) == 2
    assert any(type(layer).__name__ == "PerChannelClip" for layer in optimized.layers)
    assert report.to_dict()["pairs_equalized"][0] == list(report.pairs_equalized[0])
    assert "3 BatchNorm folded" in report.summary()


@pytest.mark.parametrize("keras_name", KERASES)
def test_equalization_balances_depthwise_ranges(keras_name):
    optimized, _ = optimize_for_per_tensor(_mobilenet_block(keras_name))
    dw = next(layer for layer in optimized.layers if type(layer).__name__ == "DepthwiseConv2D")
    ranges = np.abs(dw.get_weights()[0]).max(axis=(0, 1)).ravel()
    assert ranges.max() / ranges.min() < 20


def test_optimized_model_converts_to_tflite():
    optimized, _ = optimize_for_per_tensor(_mobilenet_block())
    function = tf.function(lambda x: optimized(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((1, 16, 16, 3), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], optimized)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(2)
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(8)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel = True
    assert converter.convert()


def test_optimized_model_saves_and_reloads(tmp_path):
    optimized, _ = optimize_for_per_tensor(_mobilenet_block())
    path = tmp_path / "optimized.h5"
    optimized.save(path)
    reloaded = tf_keras.models.load_model(path, compile=False)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), optimized.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("keras_name", KERASES)
def test_bias_correction_moves_biases_toward_quantized_mean(keras_name):
    optimized, _ = optimize_for_per_tensor(_mobilenet_block(keras_name))
    before = {layer.name: layer.get_weights()[1].copy() for layer in optimized.layers if layer.weights}
    data = [np.random.default_rng(4).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)]
    corrected = correct_biases(optimized, data)
    assert len(corrected) == 5
    changed = [name for name in corrected if not np.allclose(optimized.get_layer(name).get_weights()[1], before[name])]
    assert changed


def test_rejects_subclassed_models():
    from engine.common.errors import EngineError

    class Subclassed(tf_keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(EngineError, match="not a functional Keras model"):
        optimize_for_per_tensor(Subclassed())


def _onnx_conv_bn() -> onnx.ModelProto:
    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(a.astype(np.float32), n)
        for n, a in [
            ("w", rng.normal(size=(4, 3, 3, 3))),
            ("gamma", rng.uniform(0.5, 2, 4)),
            ("beta", rng.normal(size=4)),
            ("mean", rng.normal(size=4)),
            ("var", rng.uniform(0.1, 2, 4)),
        ]
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], epsilon=1e-3),
        helper.make_node("Relu", ["b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_onnx_fold_batchnorm_is_exact():
    model = _onnx_conv_bn()
    folded, count = fold_batchnorm(model)
    assert count == 1
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Relu"]
    onnx.checker.check_model(folded)
    x = np.random.default_rng(6).normal(size=(1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_onnx_fold_batchnorm_on_flowers(flowers_onnx):
    model = onnx.load(str(flowers_onnx))
    folded, count = fold_batchnorm(model)
    assert count == 7
    x = np.random.default_rng(7).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(model, x), atol=1e-5)


@pytest.mark.slow
def test_optimize_flowers_is_equivalent_on_photos(flowers_h5, flower_photos):
    from PIL import Image

    paths = sorted(flower_photos.glob("*/*"))[::15]
    images = (
        np.stack(
            [np.asarray(Image.open(p).convert("RGB").resize((128, 128), Image.NEAREST), np.float32) for p in paths]
        )
        / 127.5
        - 1.0
    )
    model = tf_keras_model(flowers_h5)  # optimize_for_per_tensor leaves it as it is
    optimized, report = optimize_for_per_tensor(model)
    assert len(report.batchnorms_folded) == 52 and report.pairs_equalized
    for x in (images, np.random.default_rng(8).uniform(-1, 1, (4, 128, 128, 3)).astype(np.float32)):
        before, after = model.predict(x, verbose=0), optimized.predict(x, verbose=0)
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=5e-5)


@pytest.mark.parametrize(
    ("options", "key"),
    [({"optimize": True}, "quantization.optimize"), ({"bias_correction": True}, "quantization.bias_correction")],
)
def test_a_model_that_cannot_be_rewritten_fails_naming_the_key(tmp_path, options, key):
    """Never quantized silently as it is: a subclassed Keras 3 model with optimize/bias_correction fails."""
    from pathlib import Path

    import keras

    from engine.common.errors import ConfigError
    from engine.optimize import optimize_keras
    from tests.quant_helpers import ArrayCalibration, random_images

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.head = keras.layers.Dense(2)

        def call(self, inputs):
            return self.head(keras.ops.mean(inputs, axis=(1, 2)))

    model = Subclassed()
    model(random_images(1))
    settings = Quantization(quantizer="TFlite_converter", granularity="per_tensor", **options)
    with pytest.raises(ConfigError, match=f"^{key}: cannot rewrite sub.keras: .*not a functional Keras model"):
        optimize_keras(model, Path("sub.keras"), settings, ArrayCalibration(random_images(4)), [])


@pytest.mark.parametrize("keras_name", KERASES)
def test_a_sequential_model_is_optimized_as_a_functional_one(keras_name):
    keras = importlib.import_module(keras_name)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(4, 3),
            layers.BatchNormalization(),
            layers.ReLU(6.0),
            layers.Conv2D(4, 1),
            layers.Flatten(),
        ]
    )
    _randomize_batchnorms(model, np.random.default_rng(6))
    optimized, report = optimize_for_per_tensor(model)
    assert len(report.batchnorms_folded) == 1 and len(report.pairs_equalized) == 1
    x = np.random.default_rng(7).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(optimized(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-5)


def test_the_same_request_reuses_the_last_optimized_model():
    """`stquant compare`: variants differing only in input type share one optimized model (and so one trace);
    another granularity, other calibration data or another model is optimized again."""
    from pathlib import Path

    from engine.optimize import LastOptimized, optimize_keras
    from tests.quant_helpers import ArrayCalibration, random_images

    model, data = _mobilenet_block(), ArrayCalibration(random_images(4, size=16))
    settings = Quantization(quantizer="TFlite_converter", granularity="per_tensor", optimize=True)
    last = LastOptimized()
    first_notes, second_notes = [], []
    first, report = optimize_keras(model, Path("m.h5"), settings, data, first_notes, last)
    second, again = optimize_keras(model, Path("m.h5"), settings, data, second_notes, last)
    assert second is first and again == report and second_notes == first_notes and first_notes
    again["pairs_equalized"].clear()  # a caller's change to its report does not reach the next caller
    assert optimize_keras(model, Path("m.h5"), settings, data, [], last)[1] == report
    assert optimize_keras(model, Path("m.h5"), settings, data, [])[0] is not first  # no memo: nothing reused
    other_data = ArrayCalibration(random_images(4, size=16))
    assert optimize_keras(model, Path("m.h5"), settings, other_data, [], last)[0] is not first
    assert optimize_keras(_mobilenet_block(), Path("m.h5"), settings, data, [], last)[0] is not first
