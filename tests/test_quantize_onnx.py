"""ONNX QDQ static quantization: from Keras (tf2onnx) and from ONNX, real ORT sessions, real assets (slow)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine.config.schema import Quantization
from engine.models.info import describe_model
from engine.quantize.onnx import quantize_onnx
from tests.quant_helpers import (
    ArrayCalibration,
    PhotoCalibration,
    photo_files,
    random_images,
    save_tiny_keras_model,
)
from tests.test_models import make_onnx


def settings(**overrides):
    values = {
        "quantizer": "Onnx_quantizer",
        "quantization_type": "PTQ",
        "quantization_input_type": "float",
        "quantization_output_type": "float",
        "granularity": "per_channel",
        "optimize": False,
        "target_opset": 17,
        "export_dir": "quantized_models",
        "extra_options": None,
        "calibration_method": "minmax",
    }
    return Quantization(**{**values, **overrides})


def run(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def test_keras_model_is_converted_to_nchw_and_quantized(tmp_path):
    keras_path = save_tiny_keras_model(tmp_path / "tiny.keras")
    images = random_images(48, seed=2)
    progress = []
    result = quantize_onnx(
        keras_path,
        ArrayCalibration(images),
        settings(),
        tmp_path / "export",
        tmp_path / "work",
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert result.model_path == tmp_path / "export" / "converted_model_quant_qdq_pc.onnx"
    converted = tmp_path / "work" / "converted_model" / "converted_model.onnx"
    assert describe_model(converted).layout == "NCHW" and describe_model(converted).opset == 17
    assert progress[-1] == (48, 48)
    ops = {n.op_type for n in onnx.load(str(result.model_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    nchw = images.transpose(0, 3, 1, 2).copy()
    assert np.abs(run(result.model_path, nchw) - run(converted, nchw)).max() < 0.05


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile", "mse"])
def test_onnx_model_is_upconverted_and_quantized(tmp_path, method):
    source = make_onnx(tmp_path / "tiny.onnx", opset=13)
    images = random_images(40, seed=4)
    result = quantize_onnx(
        source, ArrayCalibration(images), settings(calibration_method=method), tmp_path / "export", tmp_path / "work"
    )
    assert result.model_path.name == "tiny_quant_qdq_pc.onnx"
    assert any("opset 13 converted to 17" in n for n in result.notes)
    assert describe_model(result.model_path).quantized and describe_model(result.model_path).opset >= 17
    nchw = images.transpose(0, 3, 1, 2).copy()
    assert np.abs(run(result.model_path, nchw) - run(source, nchw)).max() < 0.1


def test_per_tensor_and_moving_average(tmp_path):
    source = make_onnx(tmp_path / "tiny.onnx", opset=17)
    calibration = ArrayCalibration(random_images(20))
    pc = quantize_onnx(source, calibration, settings(), tmp_path / "export", tmp_path / "work").model_path
    pt = quantize_onnx(
        source,
        calibration,
        settings(granularity="per_tensor", extra_options="calib_moving_average"),
        tmp_path / "export",
        tmp_path / "work",
    ).model_path
    assert pt.name == "tiny_quant_qdq_pt.onnx"
    sizes = {
        p: onnx.numpy_helper.to_array(next(i for i in onnx.load(str(p)).graph.initializer if i.name == "w_scale")).size
        for p in (pc, pt)
    }
    assert sizes == {pc: 8, pt: 1}


def test_nhwc_onnx_model_gets_nhwc_calibration(tmp_path):
    source = make_onnx(tmp_path / "nhwc.onnx", nhwc=True, opset=17)
    images = random_images(24)
    result = quantize_onnx(source, ArrayCalibration(images), settings(), tmp_path / "export", tmp_path / "work")
    assert np.abs(run(result.model_path, images) - run(source, images)).max() < 0.1


def test_already_quantized_model_is_returned_unchanged(tmp_path):
    source = make_onnx(tmp_path / "tiny.onnx", opset=17)
    calibration = ArrayCalibration(random_images(8))
    quantized = quantize_onnx(source, calibration, settings(), tmp_path / "export", tmp_path / "work").model_path
    before = sorted(p.name for p in (tmp_path / "export").iterdir())
    again = quantize_onnx(quantized, calibration, settings(), tmp_path / "export", tmp_path / "work")
    assert again.model_path == quantized
    assert any("already quantized" in n for n in again.notes)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == before


def _agreement(float_path, quant_path, images):
    """Top-1 agreement through the engine's predictors (QDQ emulated exactly where int8 kernels saturate)."""
    from engine.evaluation.predictors import load_predictor

    return float(
        np.mean(
            load_predictor(float_path).predict(images).argmax(1) == load_predictor(quant_path).predict(images).argmax(1)
        )
    )


@pytest.mark.slow
def test_tutorial_h5_through_onnx_quantizer(flowers_h5, flower_photos, tmp_path):
    """Calibrated on 100 photos (20 of each class), compared on all 300. The model is the one loaded once per process
    for the files that use it (tests/shared_models.py)."""
    from tests.shared_models import flowers_model

    files = photo_files(flower_photos)
    calibration = PhotoCalibration(files[::3])
    work = tmp_path / "work"
    result = quantize_onnx(flowers_h5, calibration, settings(), tmp_path / "export", work, model=flowers_model())
    assert result.model_path.name == "converted_model_quant_qdq_pc.onnx"
    images = np.concatenate(list(PhotoCalibration(files).batches(100)))
    agreement = _agreement(tmp_path / "work" / "converted_model" / "converted_model.onnx", result.model_path, images)
    print(f"ONNX (from .h5) top-1 agreement with the float model: {agreement:.2%}")
    assert agreement >= 0.98


@pytest.mark.slow
def test_flowers_onnx_nchw_through_onnx_quantizer(flowers_onnx, flower_photos, tmp_path):
    """Calibrated on 100 photos (20 of each class), compared on all 300."""
    files = photo_files(flower_photos)
    result = quantize_onnx(
        flowers_onnx, PhotoCalibration(files[::3]), settings(), tmp_path / "export", tmp_path / "work"
    )
    images = np.concatenate(list(PhotoCalibration(files).batches(100)))
    agreement = _agreement(flowers_onnx, result.model_path, images)
    print(f"ONNX (NCHW model) top-1 agreement with the float model: {agreement:.2%}")
    assert agreement >= 0.98


def _dead_squeeze_excite_onnx(path):
    """Conv Relu, then a squeeze-excite gate whose squeeze Relu is 0 on every input (its Conv bias is -8):
    GlobalAveragePool Conv Relu Conv Sigmoid, Mul, GlobalAveragePool Flatten. As in ST's EfficientNet LC,
    the gate is a constant sigmoid(bias) in float."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["f"]),
        helper.make_node("GlobalAveragePool", ["f"], ["g"]),
        helper.make_node("Conv", ["g", "sw", "sb"], ["s"]),
        helper.make_node("Relu", ["s"], ["dead"]),
        helper.make_node("Conv", ["dead", "ew", "eb"], ["e"]),
        helper.make_node("Sigmoid", ["e"], ["gate"]),
        helper.make_node("Mul", ["f", "gate"], ["m"]),
        helper.make_node("GlobalAveragePool", ["m"], ["p"]),
        helper.make_node("Flatten", ["p"], ["y"]),
    ]
    arrays = {
        "w": rng.normal(0, 0.3, (6, 3, 3, 3)),
        "b": rng.normal(0, 0.1, 6),
        "sw": rng.normal(0, 0.3, (2, 6, 1, 1)),
        "sb": np.full(2, -8.0),
        "ew": rng.normal(0, 1.0, (6, 2, 1, 1)),
        "eb": rng.normal(0, 1.0, 6),
    }
    inits = [onnx.numpy_helper.from_array(value.astype("float32"), name) for name, value in arrays.items()]
    graph = helper.make_graph(
        nodes,
        "dead_se",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
def test_relu_that_is_zero_on_every_calibration_image_stays_zero(tmp_path, granularity):
    """ORT gives an all-zero tensor scale 1 and zero point 0 and removes the Relu before it (it folds a Relu
    into the output quantization, which clamps at 0 only when the zero point is -128): the squeeze's negative
    pre-activations then reached the excite Conv, and the QDQ model of ST's EfficientNet LC agreed 11 %."""
    source = _dead_squeeze_excite_onnx(tmp_path / "dead_se.onnx")
    images = random_images(32, seed=5)
    result = quantize_onnx(
        source, ArrayCalibration(images), settings(granularity=granularity), tmp_path / "export", tmp_path / "work"
    )
    nchw = images.transpose(0, 3, 1, 2).copy()
    reference = run(source, nchw)
    tolerance = 0.05 * float(np.abs(reference).max())
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(str(result.model_path), options, providers=["CPUExecutionProvider"])
        error = float(np.abs(session.run(None, {"x": nchw})[0] - reference).max())
        assert error < tolerance, (str(level), error, tolerance)  # measured before the fix: 0.22 > 0.015


@pytest.mark.parametrize("method", ["entropy", "percentile", "mse"])
def test_histogram_chunk_never_mixes_batch_sizes(tmp_path, method):
    """20 images are a batch of 16 and one of 4: ORT stacks a chunk's runs into one array, so a chunk holding
    both failed ("inhomogeneous shape"); so did every image count whose remainder by 32 is 17 to 31 (60, 120)."""
    source = make_onnx(tmp_path / "tiny.onnx", opset=17)
    images = random_images(20, seed=6)
    result = quantize_onnx(
        source, ArrayCalibration(images), settings(calibration_method=method), tmp_path / "export", tmp_path / "work"
    )
    nchw = images.transpose(0, 3, 1, 2).copy()
    assert np.abs(run(result.model_path, nchw) - run(source, nchw)).max() < 0.1


class _Batches:
    """ORT's CalibrationDataReader over NCHW images, `size` per run."""

    def __init__(self, images, size):
        self.runs = iter([{"x": images[i : i + size]} for i in range(0, len(images), size)])

    def get_next(self):
        return next(self.runs, None)


def test_minmax_ranges_are_onnx_runtimes_own(tmp_path):
    """MinMax, measured runs at once and folded as they come, gives exactly the ranges of ORT's MinMaxCalibrater
    (NaN left out the same way), so quantize_static makes the same model."""
    from onnxruntime.quantization import create_calibrator, load_tensors_data

    source = make_onnx(tmp_path / "tiny.onnx", opset=17)
    images = random_images(37, seed=5)  # 37: the last run is a partial one
    images[8:12] = np.nan  # whole runs of NaN: ReduceMin/ReduceMax give NaN, which the ranges leave out
    images[13, 3, 4, 1] = np.nan
    result = quantize_onnx(source, ArrayCalibration(images), settings(), tmp_path / "export", tmp_path / "work")
    ours = load_tensors_data(tmp_path / "work" / "tiny_calibration_minmax.json").data
    calibrator = create_calibrator(result.float_model, augmented_model_path=str(tmp_path / "augmented.onnx"))
    calibrator.collect_data(_Batches(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), 4))
    theirs = calibrator.compute_data().data
    assert sorted(ours) == sorted(theirs) == ["c", "f", "g", "r", "x", "y"]
    for name, data in theirs.items():
        for mine, ort_value in zip(ours[name].range_value, data.range_value):
            assert mine.dtype == ort_value.dtype and mine.shape == ort_value.shape
            assert np.array_equal(mine, ort_value, equal_nan=True), name
    assert not any(np.isnan(v).any() for data in ours.values() for v in data.range_value)


def test_per_layer_report_is_the_same_whatever_the_runs_at_once(tmp_path, monkeypatch):
    """The ONNX per-layer report runs images at once and adds their sums in image order: the very same figures as
    one image at a time."""
    from engine.evaluation import layer_errors

    source = make_onnx(tmp_path / "tiny.onnx", opset=17)
    result = quantize_onnx(
        source, ArrayCalibration(random_images(24)), settings(), tmp_path / "export", tmp_path / "work"
    )
    probe = np.ascontiguousarray(random_images(9, seed=8).transpose(0, 3, 1, 2))
    reports = []
    for runs in (1, 2, 3):
        monkeypatch.setattr(layer_errors, "ONNX_PROBE_RUNS", runs)
        reports.append(layer_errors.onnx_layer_errors(result.float_model, result.model_path, [probe]))
    assert len(reports[0]) >= 2 and reports[0] == reports[1] == reports[2] == _one_at_a_time(result, probe)


def _one_at_a_time(result, images):
    """The per-layer report as one image at a time on one session, each image's sums added in turn."""
    from engine.evaluation import layer_errors

    qdq = onnx.load(str(result.model_path))
    probes = layer_errors._add_float_references(qdq.graph, onnx.load(str(result.float_model)).graph, False)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(qdq.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [name for probe in probes for name in (probe.quantized, probe.reference)]
    totals = [layer_errors._Sqnr() for _ in probes]
    for image in images:
        values = session.run(names, {"x": image[None]})
        for i, total in enumerate(totals):
            total.add(values[2 * i + 1], values[2 * i])
    errors = [layer_errors.LayerError(p.layer, p.op, t.db()) for p, t in zip(probes, totals) if t.signal > 0]
    return sorted(errors, key=lambda e: e.sqnr_db)
