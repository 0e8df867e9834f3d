"""Per-layer SQNR: a depthwise layer with a large weight on a dead channel collapses under per-tensor int8 and ranks first."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from engine.evaluation.layer_errors import LayerError, onnx_layer_errors, tflite_layer_errors

SEED = 0


def _seeded(seed: int) -> tf_keras.initializers.Initializer:
    """The layers' default initializer, seeded: the same weights whatever ran before."""
    return tf_keras.initializers.GlorotUniform(seed=seed)


def _collapsing_model() -> tf_keras.Model:
    layers = tf_keras.layers
    x = inputs = layers.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="expand", kernel_initializer=_seeded(SEED))(x)
    x = layers.DepthwiseConv2D(
        3, padding="same", activation="relu", name="depthwise", depthwise_initializer=_seeded(SEED + 1)
    )(x)
    x = layers.Conv2D(8, 1, name="project", kernel_initializer=_seeded(SEED + 2))(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, layers.Dense(3, name="head", kernel_initializer=_seeded(SEED + 3))(x))
    expand = model.get_layer("expand")
    kernel, bias = expand.get_weights()
    kernel[..., 0], bias[0] = 0.0, -1.0  # a dead channel, as BN folding leaves in MobileNet v2
    expand.set_weights([kernel, bias])
    dw = model.get_layer("depthwise")
    kernel, bias = dw.get_weights()
    kernel[..., 0, 0] *= 30.0  # per-tensor scale 30x too coarse for the other channels: a few levels left
    dw.set_weights([kernel, bias])
    return model


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, 16, 16, 3)).astype(np.float32)


def _per_tensor_tflite(model: tf_keras.Model, images: np.ndarray) -> bytes:
    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((1, *images.shape[1:]), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel = True
    return converter.convert()


def test_tflite_ranks_collapsing_depthwise_first(tmp_path):
    model = _collapsing_model()
    path = tmp_path / "model.tflite"
    path.write_bytes(_per_tensor_tflite(model, _images(16)))
    errors = tflite_layer_errors(model, path, [_images(8)])
    assert {e.layer for e in errors} >= {"expand", "depthwise", "project"}
    by_layer = {e.layer: e for e in errors}
    assert by_layer["depthwise"] == LayerError("depthwise", "DEPTHWISE_CONV_2D", by_layer["depthwise"].sqnr_db)
    assert by_layer["depthwise"].sqnr_db < by_layer["expand"].sqnr_db - 10
    assert by_layer["project"].sqnr_db > by_layer["depthwise"].sqnr_db + 10  # local: not the upstream error
    assert errors[0].layer == "depthwise"
    assert [e.sqnr_db for e in errors] == sorted(e.sqnr_db for e in errors)


@pytest.mark.parametrize("input_type", ["uint8", "int8"])
def test_the_float_graph_gives_the_keras_layers_figures_without_loading_the_model(tmp_path, input_type):
    """The report on the float graph the converter calibrated runs its float ops, not the Keras layers: the same rows
    and figures, and the Keras model is never loaded for it (int8 input: both leave out the layer that reads the
    model's input, which no int8 op produces)."""
    from engine.data.calibration import PixelCalibrationData, first_images
    from engine.data.preprocess import ImageSpec
    from engine.evaluation.layer_report import layer_report
    from engine.models.load import LazyKerasModel
    from engine.quantize.common import FirstImages
    from engine.quantize.tflite import quantize_tflite
    from tests.test_quantize_tflite import settings

    model = _collapsing_model()
    path = tmp_path / "collapsing.h5"
    model.save(path)
    pixels = np.random.default_rng(2).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    calibration = PixelCalibrationData(pixels, ImageSpec(16, 16, 3, scale=1 / 127.5, offset=-1.0), "test", {})
    out = tmp_path / "q.tflite"
    kept = FirstImages(calibration, 16)  # as a run quantizes: the report takes the images the statistics pass read
    result = quantize_tflite(
        path, kept, settings(granularity="per_tensor", quantization_input_type=input_type), out, model=model
    )
    assert kept.first is not None and len(kept.first) == 1
    assert np.array_equal(kept.first[0], first_images(calibration, 16)[0])
    unloaded = LazyKerasModel(path)
    unloaded.known_keras3 = False
    from_graph = layer_report(unloaded, out, calibration, float_tflite=result.float_tflite)
    assert from_graph == layer_report(model, out, calibration)
    assert layer_report(unloaded, out, _Undecodable(), float_tflite=result.float_tflite, first=kept.first) == from_graph
    assert not unloaded.loaded and unloaded.needed_by == []
    assert from_graph[0]["layer"] == "depthwise" and ("expand" in {r["layer"] for r in from_graph}) == (
        input_type == "uint8"
    )


class _Undecodable:
    """Calibration data the report must not decode."""

    def batches(self, batch_size: int):
        raise AssertionError("the per-layer report decoded its images again")


def test_the_cut_graph_runs_the_ops_cut_loose_and_nothing_else():
    """The float reference of the report on the float graph is a graph of the chosen ops alone, each fed by inputs of
    its own: no other op of the float model runs for an image."""
    from ai_edge_litert.interpreter import Interpreter

    from engine.evaluation.layer_errors import _CutGraph
    from engine.models.library_internals import tflite_ops
    from engine.models.trace import float_tflite

    content = float_tflite(_collapsing_model())
    cut = _CutGraph(content)
    convolutions = {cut.schema.BuiltinOperator.CONV_2D, cut.schema.BuiltinOperator.DEPTHWISE_CONV_2D}
    ops = [op for op in cut.graph.operators if cut.model.operatorCodes[op.opcodeIndex].builtinCode in convolutions]
    assert len(tflite_ops(Interpreter(model_content=content))) > len(ops) == 3
    reduced, fresh = cut.cut_down(ops)
    interpreter = Interpreter(model_content=reduced)
    assert [op["op_name"] for op in tflite_ops(interpreter)] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert [d["index"] for d in interpreter.get_input_details()] == [index for inputs in fresh for index in inputs]
    assert len(interpreter.get_output_details()) == 3


def test_layers_called_in_sequence_equal_the_sub_model():
    """The fast path (a fused op's layers called one after the other) computes what the general one (a Keras
    sub-model from the first layer's input to the last layer's output) computes; a chain that skips a layer
    is refused by the fast path."""
    from engine.evaluation.layer_errors import _in_sequence, _sub_model

    layers = tf_keras.layers
    x = inputs = layers.Input((16, 16, 3))
    conv = layers.Conv2D(8, 3, padding="same", name="conv", kernel_initializer=_seeded(0))
    norm = layers.BatchNormalization(name="norm")
    relu = layers.ReLU(6.0, name="relu")
    model = tf_keras.Model(inputs, relu(norm(conv(x))))
    norm.set_weights([w + np.random.default_rng(1).uniform(0.5, 2, w.shape) for w in norm.get_weights()])
    chain = [conv, norm, relu]
    fast, general = _in_sequence(chain, chain), _sub_model(tf_keras, conv, relu, relu)
    images = _images(4)
    np.testing.assert_array_equal(np.asarray(fast(images, training=False)), np.asarray(general(images, training=False)))
    assert _in_sequence([conv, relu], [conv, relu]) is None and model.get_layer("norm") is norm


def test_onnx_ranks_collapsing_depthwise_first(tmp_path):
    import tf2onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = _collapsing_model()
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((None, 16, 16, 3), tf.float32, name="input"),),
        opset=13,
        inputs_as_nchw=["input"],
        output_path=str(float_path),
    )
    calibration = [{"input": image.transpose(2, 0, 1)[None]} for image in _images(16)]
    quantize_static(
        str(float_path),
        str(qdq_path),
        _Reader(calibration),
        quant_format=QuantFormat.QDQ,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
        per_channel=False,
    )
    errors = onnx_layer_errors(float_path, qdq_path, [_images(8).transpose(0, 3, 1, 2)])
    by_layer = {e.layer: e for e in errors}
    assert {"expand", "depthwise", "project", "head"} <= set(by_layer)
    assert errors[0] == LayerError("depthwise", "Conv (depthwise)", by_layer["depthwise"].sqnr_db)
    assert by_layer["depthwise"].sqnr_db < by_layer["expand"].sqnr_db - 10
    assert by_layer["project"].sqnr_db > by_layer["depthwise"].sqnr_db + 10  # local: not the upstream error
    assert [e.sqnr_db for e in errors] == sorted(e.sqnr_db for e in errors)


class _Reader:
    def __init__(self, items):
        self._items = iter(items)

    def get_next(self):
        return next(self._items, None)
