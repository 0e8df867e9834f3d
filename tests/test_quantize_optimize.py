"""`optimize`/`bias_correction` through both quantizers and the per-layer report on their outputs (tiny real models)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tf_keras

from engine.config.schema import Quantization
from engine.evaluation.layer_report import format_report, layer_report
from engine.optimize import optimize_keras
from engine.quantize.onnx import quantize_onnx
from engine.quantize.tflite import quantize_tflite
from tests.quant_helpers import ArrayCalibration, random_images
from tests.test_optimize import _mobilenet_block, _onnx_conv_bn


def settings(**overrides):
    values = {
        "quantizer": "TFlite_converter",
        "quantization_input_type": "float",
        "quantization_output_type": "float",
        "granularity": "per_tensor",
        "optimize": True,
        "bias_correction": False,
        "target_opset": 17,
        "extra_options": None,
        "calibration_method": "minmax",
    }
    return Quantization(**{**values, **overrides})


@pytest.fixture(scope="module")
def block_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("block") / "block.h5"
    _mobilenet_block().save(path)
    return path


def _run_onnx(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def test_tflite_optimize_is_equivalent_and_reported(block_h5, tmp_path):
    images = random_images(32, seed=3)
    result = quantize_tflite(block_h5, ArrayCalibration(images), settings(), tmp_path / "q.tflite")
    original = tf_keras.models.load_model(block_h5, compile=False)
    np.testing.assert_allclose(
        result.float_model.predict(images, verbose=0), original.predict(images, verbose=0), rtol=1e-4, atol=1e-6
    )
    assert any(n.startswith("optimize: 3 BatchNorm folded, 3 layer pairs equalized") for n in result.notes)
    assert not any("ignored" in n for n in result.notes)
    assert len(result.optimization["batchnorms_folded"]) == 3 and len(result.optimization["relu6_replaced"]) == 2
    assert result.float_tflite is None  # the optimized float model is not the user's: a chain converts its own
    rows = layer_report(result.float_model, result.model_path, ArrayCalibration(images), images=8)
    assert rows and set(rows[0]) == {"layer", "op", "sqnr_db"}
    assert "DEPTHWISE_CONV_2D" in {r["op"] for r in rows}
    assert format_report(rows).splitlines()[0].startswith("layer")


def test_onnx_optimize_converts_the_optimized_model(block_h5, tmp_path):
    images = random_images(32, seed=4)
    result = quantize_onnx(
        block_h5,
        ArrayCalibration(images),
        settings(quantizer="Onnx_quantizer", bias_correction=True),
        tmp_path,
        tmp_path,
    )
    assert any("3 BatchNorm folded" in n and "5 biases corrected" in n for n in result.notes)
    assert len(result.optimization["biases_corrected"]) == 5
    converted = tmp_path / "converted_model" / "converted_model.onnx"
    ops = {n.op_type for n in onnx.load(str(converted)).graph.node}
    assert "BatchNormalization" not in ops and {"Min", "Relu"} <= ops  # PerChannelClip as Min(Relu(x), c)
    original = tf_keras.models.load_model(block_h5, compile=False)
    optimized, _ = optimize_keras(original, block_h5, settings(bias_correction=True), ArrayCalibration(images), [])
    nchw = images.transpose(0, 3, 1, 2).copy()
    # the converted model is the optimized one (folded, clipped, biases corrected), not the original
    np.testing.assert_allclose(_run_onnx(converted, nchw), optimized.predict(images, verbose=0), atol=1e-5)
    assert np.abs(_run_onnx(converted, nchw) - original.predict(images, verbose=0)).max() > 1e-3
    rows = layer_report(result.float_model, result.model_path, ArrayCalibration(images), images=8, top=3)
    assert len(rows) == 3 and rows[0]["sqnr_db"] <= rows[-1]["sqnr_db"]


def test_per_channel_optimize_leaves_the_model(block_h5, tmp_path):
    images = random_images(16, seed=5)
    result = quantize_tflite(
        block_h5, ArrayCalibration(images), settings(granularity="per_channel"), tmp_path / "q.tflite"
    )
    assert any("per_channel: model left as it is" in n for n in result.notes)
    assert result.optimization["batchnorms_folded"] == []
    assert result.float_tflite is not None  # the model was left as it is


def test_onnx_input_batchnorm_is_folded(tmp_path):
    source = tmp_path / "conv_bn.onnx"
    onnx.save(_onnx_conv_bn(), source)
    images = random_images(16, size=8, seed=6)
    result = quantize_onnx(
        source, ArrayCalibration(images), settings(quantizer="Onnx_quantizer"), tmp_path / "export", tmp_path / "work"
    )
    assert any("1 BatchNormalization folded" in n for n in result.notes)
    assert len(result.optimization["batchnorms_folded"]) == 1
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(result.float_model)).graph.node}
    nchw = images[:1].transpose(0, 3, 1, 2).copy()  # the model has a fixed batch of 1
    np.testing.assert_allclose(_run_onnx(result.float_model, nchw), _run_onnx(source, nchw), rtol=1e-4, atol=1e-5)
    rows = layer_report(result.float_model, result.model_path, ArrayCalibration(images))
    assert [r["op"] for r in rows] == ["Conv"]


@pytest.mark.parametrize(
    "changes",
    [
        {"optimize": False, "bias_correction": True},
        {"optimize": True, "bias_correction": True, "granularity": "per_tensor"},
    ],
)
def test_the_callers_model_is_left_unchanged(block_h5, tmp_path, changes):
    """A chain passes its loaded model and then evaluates it as the float model: optimizing must not touch it."""
    images = random_images(16, seed=7)
    model = tf_keras.models.load_model(block_h5, compile=False)
    before = [w.copy() for w in model.get_weights()]
    result = quantize_tflite(
        block_h5, ArrayCalibration(images), settings(**changes), tmp_path / "q.tflite", model=model
    )
    assert result.optimization["biases_corrected"] and result.float_model is not model
    assert result.float_tflite is None  # the float graph the converter saw is not the caller's model
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
