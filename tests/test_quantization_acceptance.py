"""Acceptance on the tutorial model and the flower photos: optimize through both quantizers, layer report (slow)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine.calibration import ImageCalibrationData
from engine.images import decode_all
from engine.layer_report import layer_report
from engine.predictors import load_predictor
from engine.preprocess import ImageSpec
from engine.quantize.onnx import quantize_onnx
from engine.quantize.tflite import quantize_tflite
from tests.conftest import _asset
from tests.quant_helpers import photo_files

pytestmark = pytest.mark.slow
SPEC = ImageSpec(128, 128, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)


def _settings(granularity: str, optimize: bool) -> SimpleNamespace:
    return SimpleNamespace(quantization_input_type="uint8", quantization_output_type="float", granularity=granularity,
                           optimize=optimize, bias_correction=False, target_opset=17, extra_options=None,
                           calibration_method="minmax")


@pytest.fixture(scope="module")
def photos():
    files = photo_files(_asset("datasets", "flower_photos"))
    images, _ = decode_all(files, SPEC)
    return files, images


@pytest.fixture(scope="module")
def float_top1(photos):
    return _top1(_asset("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft.h5"), photos[1])


def _top1(model: Path, images: np.ndarray) -> np.ndarray:
    predictor = load_predictor(model)
    return np.concatenate([predictor.predict(images[i:i + 50]).argmax(1) for i in range(0, len(images), 50)])


def _quantize(route: str, model: Path, files: list[Path], granularity: str, optimize: bool, tmp: Path):
    calibration = ImageCalibrationData(files[::3], SPEC, "test")
    settings = _settings(granularity, optimize)
    if route == "tflite":
        return quantize_tflite(model, calibration, settings, tmp / "q.tflite"), calibration
    return quantize_onnx(model, calibration, settings, tmp, tmp), calibration


@pytest.mark.parametrize("route", ["tflite", "onnx"])
def test_per_tensor_with_optimize_agrees_with_float(route, flowers_h5, photos, float_top1, tmp_path):
    result, _ = _quantize(route, flowers_h5, photos[0], "per_tensor", True, tmp_path)
    agreement = 100 * np.mean(_top1(result.model_path, photos[1]) == float_top1)
    assert agreement >= 97, agreement
    assert len(result.optimization["pairs_equalized"]) > 30


@pytest.mark.parametrize("route", ["tflite", "onnx"])
def test_per_channel_with_optimize_leaves_the_model_as_it_is(route, flowers_h5, photos, tmp_path):
    """Documented: optimize changes nothing per-channel (no step helps there), so the int8 model is the same."""
    plain, _ = _quantize(route, flowers_h5, photos[0], "per_channel", False, tmp_path / "plain")
    optimized, _ = _quantize(route, flowers_h5, photos[0], "per_channel", True, tmp_path / "optimized")
    assert plain.optimization is None
    assert not any(optimized.optimization.values()), optimized.optimization
    images = photos[1][:100]
    np.testing.assert_array_equal(load_predictor(optimized.model_path).predict(images),
                                  load_predictor(plain.model_path).predict(images))


@pytest.mark.parametrize("route", ["tflite", "onnx"])
def test_layer_report_ranks_collapsing_depthwise_first(route, flowers_h5, photos, tmp_path):
    result, calibration = _quantize(route, flowers_h5, photos[0], "per_tensor", False, tmp_path)
    rows = layer_report(result.float_model, result.model_path, calibration, images=16, top=5)
    assert rows[0]["layer"] == "depthwise_conv2d" and "DEPTHWISE" in rows[0]["op"].upper(), rows
    assert rows[0]["sqnr_db"] < 15
    assert sum("DEPTHWISE" in r["op"].upper() for r in rows[:2]) == 2, rows
