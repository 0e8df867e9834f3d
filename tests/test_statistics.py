"""Own batched calibration statistics: the quantized model equals the converter's own calibration (slow: real model)."""


import numpy as np
import pytest

from engine.calibration import ImageCalibrationData
from engine.preprocess import ImageSpec
from engine.quantize_tflite import quantize_tflite
from tests.quant_helpers import PhotoCalibration

pytestmark = pytest.mark.slow
INT32 = 2  # schema TensorType
SPEC = ImageSpec(128, 128, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)


class Settings:
    granularity = "per_channel"
    quantization_input_type = "uint8"
    quantization_output_type = "float"
    optimize = False
    bias_correction = False


def _converters_own(model, calibration, per_tensor: bool) -> bytes:
    """The TFLite converter with its own calibrator, fed the same images (the behaviour before stquant's statistics)."""
    import tensorflow as tf

    from engine.keras_trace import converter_for
    from engine.library_internals import set_per_tensor_weights

    converter = converter_for(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    set_per_tensor_weights(converter, per_tensor)
    converter.representative_dataset = lambda: ([batch] for batch in calibration.batches(16))
    return converter.convert()


def _tensors(blob: bytes) -> dict:
    """name -> (scales, zero points, type, constant data or None)."""
    from engine.library_internals import litert_schema

    model = litert_schema().ModelT.InitFromPackedBuf(blob, 0)
    found = {}
    for tensor in model.subgraphs[0].tensors:
        q = tensor.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
        zero_points = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        data = model.buffers[tensor.buffer].data
        found[tensor.name] = (scales, zero_points, tensor.type, None if data is None else bytes(data))
    return found


@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
def test_scales_and_zero_points_equal_the_converters_calibration(flowers_h5, flower_photos, tmp_path, granularity):
    from engine.models import load_keras_model
    from engine.predictors import TFLitePredictor

    files = sorted(flower_photos.glob("*/*.jpg"))[::5]  # 60 photos, every class
    model = load_keras_model(flowers_h5)
    settings = Settings()
    settings.granularity = granularity
    ours = quantize_tflite(flowers_h5, ImageCalibrationData(files, SPEC, "test"), settings, tmp_path / "ours.tflite",
                           model=model)
    theirs = _converters_own(model, PhotoCalibration(files), granularity == "per_tensor")
    mine, reference = _tensors(ours.model_path.read_bytes()), _tensors(theirs)
    assert mine.keys() == reference.keys()
    quantized = 0
    for name, (scales, zero_points, dtype, value) in reference.items():
        my_scales, my_zero_points, my_dtype, my_value = mine[name]
        assert my_dtype == dtype, name
        np.testing.assert_array_equal(my_zero_points, zero_points, err_msg=name)
        np.testing.assert_allclose(my_scales, scales, rtol=1e-5, err_msg=name)
        if dtype == INT32 and value is not None:  # biases: scale = input scale x weight scale, so within 1 LSB or 1e-5
            np.testing.assert_allclose(np.frombuffer(my_value, np.int32), np.frombuffer(value, np.int32), atol=1, rtol=1e-5,
                                       err_msg=name)
        else:
            assert my_value == value, f"constant {name} differs"
        quantized += bool(scales.size)
    assert quantized > 100
    pixels = np.stack([np.asarray(__import__("PIL.Image").Image.open(f).convert("RGB").resize((128, 128), 0))
                       for f in files[:32]])
    path = tmp_path / "theirs.tflite"
    path.write_bytes(theirs)
    top = [TFLitePredictor(p).predict_pixels(pixels, SPEC).argmax(1) for p in (ours.model_path, path)]
    np.testing.assert_array_equal(*top)
