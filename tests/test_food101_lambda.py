"""Integration: ST's food-101 EfficientNet LC v1 .h5 (16 Lambda layers of Python 3.8-3.10 bytecode).

It loads with its Lambdas recognised (no code from the file runs), evaluates, and quantizes with
both quantizers. The flower photos are out of domain for 101 food classes, so only the top-1
agreement between the int8 models and the float model means something (labels are ignored).
"""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from engine.evaluate import agreement, evaluate
from engine.models import load_keras_model
from engine.predictors import KerasPredictor, load_predictor
from engine.quantize.onnx import keras_to_onnx, quantize_onnx
from engine.quantize.tflite import quantize_tflite
from tests.quant_helpers import ArrayCalibration, photo_files

pytestmark = pytest.mark.slow
H5 = "st_efficientnet_lc_v1_128_tfs.h5"
CLASSES = [f"food_{i}" for i in range(101)]
SETTINGS = SimpleNamespace(granularity="per_channel", quantization_input_type="uint8",
                           quantization_output_type="float", optimize=False, bias_correction=False)


def photos(root) -> np.ndarray:
    """The 300 flower photos as the model expects them: RGB, 128x128 nearest, x/255."""
    def load(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((128, 128), Image.NEAREST), np.float32) / 255.0
    return np.stack([load(f) for f in photo_files(root)])


def test_food101_lambdas_recognised_evaluated_and_quantized(tmp_path, food101_model, flower_photos):
    path = food101_model / H5
    model = load_keras_model(path)
    assert sum(type(layer).__name__ == "TensorExpression" for layer in model.layers) == 16
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
    images = photos(flower_photos)
    labels = np.zeros(len(images), int)  # out of domain: only agreement between models is compared
    calibration = ArrayCalibration(images[::5])  # 60 photos, every class
    ours = quantize_tflite(path, calibration, SETTINGS, tmp_path / "ours.tflite", model=model)
    onnx = quantize_onnx(path, calibration, SETTINGS, tmp_path / "onnx", tmp_path / "work", model=model)

    float_result = evaluate(KerasPredictor(path), images, labels, CLASSES)
    agreements = {}
    # LiteRT's XNNPACK cannot prepare these int8 graphs in batches: the predictor falls back to built-in kernels.
    for name, quantized in [("onnx", onnx.model_path), ("ours", ours.model_path),
                            ("st", food101_model / "st_efficientnet_lc_v1_128_tfs_int8.tflite")]:
        agreements[name] = agreement(float_result, evaluate(load_predictor(quantized), images, labels, CLASSES))
    float_onnx = keras_to_onnx(model, 17, tmp_path / "float.onnx", path)
    agreements["float_onnx"] = agreement(float_result, evaluate(load_predictor(float_onnx), images, labels, CLASSES))
    print(f"top-1 agreement with the float model on {len(images)} flower photos: {agreements}")
    assert agreements["st"] >= 65  # ST's own int8 as a yardstick (measured 73.0 %)
    # measured 76.0 %. The converter's own calibrator gives 78.0 % with scales within 1.8e-6 of ours (same zero
    # points, tests/test_statistics.py): its ranges moved by +-1e-6 relative give 74.7 to 78.3 % (20 draws).
    assert agreements["ours"] >= agreements["st"]
    assert agreements["float_onnx"] == 100.0  # the recognised Lambdas convert exactly to ONNX
    # measured 76.3 %; 11.0 % while the dead squeeze Relu of conv2d_33 (0 on all 60 images) let negatives through
    assert agreements["onnx"] >= agreements["st"]
    assert float_result.n == 300
