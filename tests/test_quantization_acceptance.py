"""Acceptance on the tutorial model and the flower photos: optimize through both quantizers, layer report (slow)."""

from pathlib import Path

import numpy as np
import pytest

from engine.config.schema import Quantization
from engine.data.calibration import ImageCalibrationData
from engine.data.images import decode_all
from engine.data.preprocess import ImageSpec
from engine.evaluation.layer_report import layer_report
from engine.evaluation.predictors import KerasPredictor, Predictor, load_predictor
from engine.models.load import LazyKerasModel
from engine.quantize.common import ModelMemo
from engine.quantize.onnx import quantize_onnx
from engine.quantize.tflite import quantize_tflite
from tests.conftest import _asset
from tests.quant_helpers import photo_files

pytestmark = pytest.mark.slow
SPEC = ImageSpec(128, 128, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)


def _settings(quantizer: str, granularity: str, optimize: bool) -> Quantization:
    return Quantization(
        quantizer=quantizer,
        quantization_input_type="uint8",
        quantization_output_type="float",
        granularity=granularity,
        optimize=optimize,
    )


@pytest.fixture(scope="module")
def photos():
    files = photo_files(_asset("datasets", "flower_photos"))
    images, _ = decode_all(files, SPEC)
    return files, images


@pytest.fixture(scope="module")
def float_top1(photos, keras_model):
    """The float model's top-1 class of every photo, run in Keras (the model loaded once, below)."""
    path = _asset("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft.h5")
    return _top1(KerasPredictor(path, model=keras_model), photos[1])


@pytest.fixture(scope="module")
def keras_model():
    """The tutorial model loaded once: each quantization below starts from it, as `stquant compare` does."""
    from tests.shared_models import flowers_model

    return flowers_model()


def _top1(model: Path | Predictor, images: np.ndarray) -> np.ndarray:
    predictor = load_predictor(model) if isinstance(model, Path) else model
    return np.concatenate([predictor.predict(images[i : i + 50]).argmax(1) for i in range(0, len(images), 50)])


@pytest.fixture(scope="module")
def shared() -> dict:
    """What `stquant compare` keeps between its quantizations of one loaded model: the memo (optimized model,
    trace, ONNX conversion) and the calibration data, one per photo step."""
    return {"memo": ModelMemo(), "calibrations": {}}


def _quantize(
    route: str,
    model: Path,
    files: list[Path],
    granularity: str,
    optimize: bool,
    tmp: Path,
    loaded,
    shared: dict,
    step: int = 3,
    memo: bool = True,
):
    """Quantize `loaded` (the Keras model of `model`) calibrated on every `step`-th photo; `memo`: reuse what an
    earlier quantization of `loaded` made (as `stquant compare` does), else convert and optimize anew."""
    calibration = shared["calibrations"].setdefault(step, ImageCalibrationData(files[::step], SPEC, "test"))
    kept = shared["memo"] if memo else None
    if route == "tflite":
        return quantize_tflite(
            model,
            calibration,
            _settings("TFlite_converter", granularity, optimize),
            tmp / "q.tflite",
            model=loaded,
            memo=kept,
        ), calibration
    return quantize_onnx(
        model, calibration, _settings("Onnx_quantizer", granularity, optimize), tmp, tmp, model=loaded, memo=kept
    ), calibration


@pytest.mark.parametrize("route", ["tflite", "onnx"])
def test_per_tensor_with_optimize_agrees_with_float(
    route, flowers_h5, photos, float_top1, tmp_path, keras_model, shared
):
    result, _ = _quantize(route, flowers_h5, photos[0], "per_tensor", True, tmp_path, keras_model, shared)
    agreement = 100 * np.mean(_top1(result.model_path, photos[1]) == float_top1)
    assert agreement >= 97, agreement
    assert len(result.optimization["pairs_equalized"]) > 30


@pytest.mark.parametrize("route", ["tflite", "onnx"])
def test_per_channel_with_optimize_leaves_the_model_as_it_is(route, flowers_h5, photos, tmp_path, keras_model, shared):
    """Documented: optimize changes nothing per-channel (no step helps there), so the int8 model is the same.
    Equality does not depend on how many photos calibrate: 25 (5 of each class) do. The optimized one is converted
    anew (no memo), so that a model changed in place could not pass for the plain one."""
    plain, _ = _quantize(
        route, flowers_h5, photos[0], "per_channel", False, tmp_path / "plain", keras_model, shared, 12
    )
    optimized, _ = _quantize(
        route, flowers_h5, photos[0], "per_channel", True, tmp_path / "optimized", keras_model, shared, 12, memo=False
    )
    assert plain.optimization is None
    assert not any(optimized.optimization.values()), optimized.optimization
    images = photos[1][:100]
    np.testing.assert_array_equal(
        load_predictor(optimized.model_path).predict(images), load_predictor(plain.model_path).predict(images)
    )


@pytest.mark.parametrize("route", ["tflite", "onnx"])
def test_layer_report_ranks_collapsing_depthwise_first(route, flowers_h5, photos, tmp_path, keras_model, shared):
    result, calibration = _quantize(route, flowers_h5, photos[0], "per_tensor", False, tmp_path, keras_model, shared)
    rows = layer_report(result.float_model, result.model_path, calibration, images=16, top=5)
    assert rows[0]["layer"] == "depthwise_conv2d" and "DEPTHWISE" in rows[0]["op"].upper(), rows
    if route == "tflite":  # on the float graph the converter calibrated (as a run does): the Keras layers' figures
        lazy = LazyKerasModel(flowers_h5, keras_model)
        assert layer_report(lazy, result.model_path, calibration, 16, 5, float_tflite=result.float_tflite) == rows
    assert rows[0]["sqnr_db"] < 15
    assert sum("DEPTHWISE" in r["op"].upper() for r in rows[:2]) == 2, rows
