"""Own batched calibration statistics: the ranges and the quantized model equal the converter's own calibration.

The small models are built here; the real ones (slow) are the tutorial's MobileNet v2 and the model zoo's
MobileNet v1 (VWW) and ResNet-8 (CIFAR-10); its EfficientNet LC v1 (food-101, clip Lambdas and squeeze-excite) is
checked in tests/test_food101_lambda.py, on the model and quantization that file shares.
"""

import numpy as np
import pytest

from engine.config.schema import Quantization
from engine.data.calibration import ImageCalibrationData
from engine.data.preprocess import ImageSpec
from engine.quantize.tflite import quantize_tflite
from tests.quant_helpers import ArrayCalibration, PhotoCalibration, photo_files

INT32 = 2  # schema TensorType
FLT_MIN = float(np.finfo(np.float32).tiny)
SPEC = ImageSpec(128, 128, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)


def settings(granularity: str = "per_channel") -> Quantization:
    return Quantization(
        quantizer="TFlite_converter",
        granularity=granularity,
        quantization_input_type="uint8",
        quantization_output_type="float",
    )


def _squeeze_excite_clip():
    """The ops of ST's EfficientNet LC: clip Lambda (MINIMUM, MAXIMUM), swish (LOGISTIC, MUL), squeeze-excite
    (MEAN, a Reshape of the dynamic batch: SHAPE, STRIDED_SLICE, PACK on int32 tensors, a broadcast MUL),
    and a dead ReLU (all zero, as conv2d_33 of food-101)."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.Lambda(lambda t: tf.clip_by_value(t, -0.5, 0.5))(x)
    x = keras.layers.Activation("swish")(x)
    gate = keras.layers.Reshape((1, 1, 8))(keras.layers.GlobalAveragePooling2D()(x))
    gate = keras.layers.Conv2D(2, 1, activation="relu", bias_initializer=keras.initializers.Constant(-100.0))(gate)
    gate = keras.layers.Conv2D(8, 1, activation="sigmoid")(gate)
    x = keras.layers.Multiply()([x, gate])
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))


def _square_root():
    """A convolution of the images' square root: NaN wherever a pixel has a negative channel."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(keras.layers.Lambda(tf.math.sqrt)(inputs)))


def _recorded_ranges(blob: bytes) -> dict[int, tuple[float, float]]:
    from engine.models.library_internals import litert_schema

    model = litert_schema().ModelT.InitFromPackedBuf(blob, 0)
    return {
        i: (float(t.quantization.min[0]), float(t.quantization.max[0]))
        for i, t in enumerate(model.subgraphs[0].tensors)
        if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min)
    }


def _float_converter(model):
    import tensorflow as tf

    from engine.models.trace import converter_for

    converter = converter_for(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def _float_model(model) -> bytes:
    """The float .tflite the converter calibrates."""
    from engine.models.library_internals import quantize_with_ranges

    kept = {}
    converter = _float_converter(model)
    quantize_with_ranges(converter, lambda float_model: kept.setdefault("model", float_model))
    converter.convert()
    return kept["model"]


@pytest.mark.parametrize("build", [_squeeze_excite_clip, _square_root])
def test_recorded_ranges_equal_the_calibrators(build, caplog):
    """Same tensors (float32 activations only), same min/max: NaN skipped (with a warning), max never below FLT_MIN."""
    from engine.quantize.statistics import calibrated_model, tensor_ranges

    model = build()
    images = np.random.default_rng(0).uniform(-1, 1, (12, 16, 16, 3)).astype(np.float32)
    converter = _float_converter(model)
    converter.representative_dataset = lambda: ([images[i : i + 4]] for i in range(0, len(images), 4))
    converter._experimental_calibrate_only = True  # the calibrator's ranges, before quantizing
    theirs = _recorded_ranges(converter.convert())
    float_model = _float_model(model)
    ours = tensor_ranges(float_model, ArrayCalibration(images))
    assert sorted(ours) == sorted(theirs)
    for tensor, pair in theirs.items():
        np.testing.assert_allclose(ours[tensor], pair, rtol=1e-5, atol=0, err_msg=f"tensor {tensor}")
    assert _recorded_ranges(calibrated_model(float_model, ours)) == pytest.approx(ours)
    if build is _squeeze_excite_clip:
        assert (0.0, FLT_MIN) in theirs.values()  # the dead ReLU
    assert ("computed NaN values" in caplog.text) == (build is _square_root)


def test_a_tensor_of_nan_only_is_one_clear_error():
    import tensorflow as tf
    import tf_keras as keras

    from engine.common.errors import EngineError
    from engine.quantize.statistics import tensor_ranges

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: tf.math.sqrt(-1.0 - t * t))(inputs))
    with pytest.raises(EngineError, match=r"^the float model computes only NaN in tensor \S+ on the calibration "):
        tensor_ranges(_float_model(model), ArrayCalibration(np.zeros((2, 4, 4, 3), np.float32)))


def _converters_own(float_model: bytes, calibration, per_tensor: bool) -> bytes:
    """The TFLite converter with its own calibrator, fed the same images (the behaviour before stquant's statistics).
    It quantizes `float_model`, the float .tflite the converter's conversion of the model made (`QuantResult.float_tflite`
    of our quantization): the bytes `convert()` returns, without converting the graph again
    (tests/test_library_internals.py)."""
    import tensorflow as tf

    from engine.models.library_internals import quantize_float_model, set_per_tensor_weights
    from engine.quantize.tflite import converter_without_graph

    converter = converter_without_graph()  # no graph: it quantizes float_model
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    set_per_tensor_weights(converter, per_tensor)
    converter.representative_dataset = lambda: ([batch] for batch in calibration.batches(16))
    return quantize_float_model(converter, float_model)


def _tensors(blob: bytes) -> dict:
    """name -> (scales, zero points, type, constant data or None)."""
    from engine.models.library_internals import litert_schema

    model = litert_schema().ModelT.InitFromPackedBuf(blob, 0)
    found = {}
    for tensor in model.subgraphs[0].tensors:
        q = tensor.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
        zero_points = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        data = model.buffers[tensor.buffer].data
        found[tensor.name] = (scales, zero_points, tensor.type, None if data is None else bytes(data))
    return found


def _assert_same_quantization(blob: bytes, reference_blob: bytes) -> int:
    """Same tensors, types, zero points and constants; scales within 1e-5. Returns how many tensors are quantized."""
    mine, reference = _tensors(blob), _tensors(reference_blob)
    assert mine.keys() == reference.keys()
    quantized = 0
    for name, (scales, zero_points, dtype, value) in reference.items():
        my_scales, my_zero_points, my_dtype, my_value = mine[name]
        assert my_dtype == dtype, name
        np.testing.assert_array_equal(my_zero_points, zero_points, err_msg=name)
        np.testing.assert_allclose(my_scales, scales, rtol=1e-5, err_msg=name)
        if dtype == INT32 and value is not None:  # biases: scale = input scale x weight scale, so within 1 LSB or 1e-5
            np.testing.assert_allclose(
                np.frombuffer(my_value, np.int32), np.frombuffer(value, np.int32), atol=1, rtol=1e-5, err_msg=name
            )
        else:
            assert my_value == value, f"constant {name} differs"
        quantized += bool(scales.size)
    return quantized


@pytest.fixture(scope="module")
def flowers_model():
    """The tutorial model, loaded once for both granularities (neither quantization changes it)."""
    from tests.shared_models import flowers_model

    return flowers_model()


@pytest.mark.slow
@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
def test_scales_and_zero_points_equal_the_converters_calibration(
    flowers_h5, flower_photos, tmp_path, granularity, flowers_model
):
    from engine.evaluation.predictors import TFLitePredictor

    files = sorted(flower_photos.glob("*/*.jpg"))[::5]  # 60 photos, every class
    model = flowers_model
    ours = quantize_tflite(
        flowers_h5,
        ImageCalibrationData(files, SPEC, "test"),
        settings(granularity),
        tmp_path / "ours.tflite",
        model=model,
    )
    theirs = _converters_own(ours.float_tflite, PhotoCalibration(files), granularity == "per_tensor")
    assert _assert_same_quantization(ours.model_path.read_bytes(), theirs) > 100
    pixels = np.stack(
        [np.asarray(__import__("PIL.Image").Image.open(f).convert("RGB").resize((128, 128), 0)) for f in files[:32]]
    )
    path = tmp_path / "theirs.tflite"
    path.write_bytes(theirs)
    top = [TFLitePredictor(p).predict_pixels(pixels, SPEC).argmax(1) for p in (ours.model_path, path)]
    np.testing.assert_array_equal(*top)


def _pixels(path, size: int) -> np.ndarray:
    """RGB, nearest resize, 0..255 float32."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.NEAREST), np.float32)


MODEL_ZOO = {  # model, photos, input size, rescaling of the float model
    "vww": ("vww_mobilenet_v1_0.25_96/mobilenet_v1_0.25_96.h5", "flower_photos", 96, 1 / 255),
    "resnet8": ("cifar10_resnet8/pretrainedResnet.h5", "cifar10", 32, 1.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_ZOO)
def test_model_zoo_quantization_equals_the_converters_calibration(assets, tmp_path, name):
    """60 real photos, per-channel: the model zoo's MobileNet v1 and ResNet-8. Ranges differ from the calibrator's by
    float rounding only (at most 1.8e-6 relative)."""
    from engine.models.load import load_keras_model

    model_file, photos, size, scale = MODEL_ZOO[name]
    path = assets / "models" / model_file
    files = photo_files(assets / "datasets" / photos)
    files = files[:: len(files) // 60][:60]  # every class
    images = np.stack([_pixels(f, size) * np.float32(scale) for f in files])
    model = load_keras_model(path)
    ours = quantize_tflite(path, ArrayCalibration(images), settings(), tmp_path / "ours.tflite", model=model)
    theirs = _converters_own(ours.float_tflite, ArrayCalibration(images), per_tensor=False)
    assert _assert_same_quantization(ours.model_path.read_bytes(), theirs) >= 30
