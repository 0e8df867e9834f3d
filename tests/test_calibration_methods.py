"""`quantization.calibration_method` (minmax, percentile, entropy, mse) on both quantizers.

A known activation: a million values of a standard normal with one outlier at 50. minmax keeps the outlier;
percentile, entropy and mse clip it, each where its definition says (percentile and entropy near the tail of
the normal, mse where the outlier's clipping error balances the rounding error of a million values); mse's
range has the least quantization error measured on the values themselves. The histograms behind them, their
cache entries and the ONNX route.
"""

import base64
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine.quantize.cache import TFLITE_STATISTICS, StatsCache
from engine.quantize.histograms import BINS, Histogram, entropy_divergences, method_range, without_zero_spike
from engine.quantize.onnx import CALIBRATION_BATCH
from engine.quantize.statistics import STATISTICS_BATCH
from tests.quant_helpers import ArrayCalibration

OUTLIER = 50.0
SIZE = 64  # 256 images of 64x64x1: 1,048,576 values


def _values(seed: int = 0) -> np.ndarray:
    """The known activation: a standard normal, with one outlier (the last value)."""
    values = np.random.default_rng(seed).normal(0, 1, 256 * SIZE * SIZE).astype(np.float32)
    values[-1] = OUTLIER
    return values


def _histogram(values: np.ndarray, images: int = STATISTICS_BATCH) -> Histogram:
    """The histogram of `values` added `images` images at a time, as the statistics pass adds them."""
    histogram = Histogram()
    for part in np.array_split(values, len(values) // (images * SIZE * SIZE)):
        histogram.add(part, float(part.min()), float(part.max()))
    return histogram


def _measured_error(values: np.ndarray, low: float, high: float) -> float:
    """Mean squared error of `values` quantized to asymmetric int8 over [low, high] (widened to hold 0, zero point
    rounded), computed here independently of the engine."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255
    zero = np.clip(np.round(-128 - low / scale), -128, 127)
    levels = np.clip(np.round(values.astype(np.float64) / scale) + zero, -128, 127)
    return float(np.mean(((levels - zero) * scale - values) ** 2))


@pytest.fixture(scope="module")
def known():
    values = _values()
    return values, _histogram(values), float(values.min()), float(values.max())


def test_minmax_keeps_the_outlier_and_the_others_clip_it(known):
    values, histogram, low, high = known
    assert method_range(histogram, low, high, "minmax") == (low, OUTLIER)
    magnitude = np.abs(values)
    # percentile: ONNX Runtime's symmetric 99.999: the lower edge of the |x| bin where the count reaches it
    reached = np.sort(magnitude)[int(np.ceil(0.99999 * magnitude.size)) - 1]
    bottom, top = method_range(histogram, low, high, "percentile")
    assert reached - histogram.step <= top <= reached and bottom == max(low, -top)
    bottom, top = method_range(histogram, low, high, "entropy")  # ONNX Runtime's windows: one more bin above 0
    assert 3.0 < top < 6.0 and bottom == pytest.approx(-top + histogram.step)
    assert np.mean(magnitude > top) < 1e-3  # the outlier and the far tail only
    # mse: the outlier alone costs (50 - a)^2 once clipped at a, against about 1e6 * ((a + 4.9) / 255)^2 / 12 of
    # rounding error: the least total is near a = 18 (see the next test), the outlier partly clipped
    bottom, top = method_range(histogram, low, high, "mse")
    assert 12.0 < top < 25.0 and bottom == low


def test_mse_range_has_the_least_measured_error(known):
    values, histogram, low, high = known
    ranges = {method: method_range(histogram, low, high, method) for method in ("minmax", "percentile", "entropy")}
    best = _measured_error(values, *method_range(histogram, low, high, "mse"))
    for method, pair in ranges.items():
        assert best < _measured_error(values, *pair), method
    for threshold in np.linspace(2.0, OUTLIER, 97):
        assert best <= _measured_error(values, max(low, -threshold), min(high, threshold)) * 1.01, threshold
    assert best < _measured_error(values, low, high) / 2


def _onnx_runtime_divergences(counts: np.ndarray) -> np.ndarray:
    """ONNX Runtime's `HistogramCollector.get_entropy_threshold` (128 levels) transcribed window by window, returning
    the divergence of every candidate instead of the best one (its loops over the 128 levels as array operations)."""
    from onnxruntime.quantization.calibrate import entropy
    from onnxruntime.quantization.quant_utils import smooth_distribution

    zero, divergences = counts.size // 2, []
    for kept in range(64, zero + 1):
        start, end = zero - kept, min(zero + kept + 1, counts.size)
        window = counts[start:end]
        p = window.copy()
        p[0] += counts[:start].sum()
        p[-1] += counts[end:].sum()
        merged = window.size // 128
        levels = window[: 128 * merged].reshape(128, merged).sum(1)  # level k: bins k * merged to (k + 1) * merged
        levels[-1] += window[128 * merged :].sum()
        filled = np.count_nonzero(p[: 128 * merged].reshape(128, merged), axis=1)
        q = np.zeros(p.size, np.int64)  # each level's count spread over its non-empty bins (truncated), else 0
        q[: 128 * merged] = np.repeat(np.where(filled > 0, levels / np.maximum(filled, 1), 0), merged)
        p, q = smooth_distribution(p), smooth_distribution(q)
        divergences.append(np.inf if p is None or q is None else float(entropy(p, q)))
    return np.array(divergences)


@pytest.mark.parametrize("seed", range(4))
def test_entropy_is_onnx_runtimes(seed):
    """Same divergences as ONNX Runtime's loop (which computes in float32: near-ties may pick another candidate),
    and ONNX Runtime's own get_entropy_threshold picks a candidate of least divergence on ours."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(seed)
    values = [rng.normal(0.5, 1, 200_000), np.maximum(rng.standard_t(3, 200_000), 0)][seed % 2].astype(np.float32)
    histogram = Histogram()
    for part in np.array_split(values, 8):
        histogram.add(part, float(part.min()), float(part.max()))
    if seed >= 2:
        histogram.counts[rng.integers(0, BINS, 300)] = 0  # empty bins inside the windows
    half = max(histogram.first + BINS, -histogram.first)
    counts = np.zeros(2 * half, np.int64)
    counts[histogram.first + half : histogram.first + half + BINS] = histogram.counts
    ours, bottoms, tops = entropy_divergences(histogram)
    np.testing.assert_allclose(ours, _onnx_runtime_divergences(counts), rtol=1e-4)
    edges = ((np.arange(counts.size + 1) - half) * histogram.step).astype(np.float32)
    collector = HistogramCollector("entropy", False, counts.size, 128, 99.999, "same")
    _, top = collector.get_entropy_threshold((counts, edges, np.float32(-1e9), np.float32(1e9)), 128)
    theirs = int(np.argmin(np.abs(tops - float(top))))
    assert ours[theirs] <= ours.min() * (1 + 1e-4)
    ours, bottoms, tops = entropy_divergences(without_zero_spike(histogram))  # what the method takes
    assert method_range(histogram, -1e9, 1e9, "entropy") == (bottoms[np.argmin(ours)], tops[np.argmin(ours)])


def test_entropy_keeps_the_values_of_a_relu_that_is_mostly_zeros():
    """A ReLU6 output of 85 % exact zeros (as the tutorial model's re_lu_34): every range holds the zeros exactly,
    and entropy keeps the other values (counted, the zeros outweighed clipping: re_lu_34 was clipped to its narrowest
    window)."""
    rng = np.random.default_rng(3)
    values = np.minimum(rng.exponential(1.0, 256 * SIZE * SIZE), 6.0).astype(np.float32)
    values[rng.random(values.size) < 0.85] = 0.0
    histogram = _histogram(values)
    bottom, top = method_range(histogram, 0.0, 6.0, "entropy")
    assert bottom == 0.0 and np.mean(values[values > 0] > top) < 0.01
    divergences, _, tops = entropy_divergences(histogram)  # the zeros counted
    assert np.mean(values[values > 0] > tops[np.argmin(divergences)]) > 0.1


def test_histogram_memory_is_bounded_and_its_counts_exact():
    """Ranges growing by 10x per batch, both signs: the counts stay BINS; merged bins lose no value, and each value
    is in the bin of the final grid that holds it (up to float rounding at the edges)."""
    rng = np.random.default_rng(5)
    batches = [rng.normal(2.0, 1.0, 20_000).astype(np.float32) * 10.0**k for k in range(6)]
    batches.append(-np.abs(batches[-1]))
    histogram = Histogram()
    for batch in batches:
        histogram.add(batch, float(batch.min()), float(batch.max()))
    everything = np.concatenate(batches)
    assert histogram.counts.size == BINS and histogram.counts.sum() == everything.size
    assert histogram.first <= 0 < histogram.first + BINS  # the window holds 0
    edges = (histogram.first + np.arange(BINS + 1)) * histogram.step
    expected = np.histogram(everything, edges)[0]
    assert np.abs(histogram.counts - expected).sum() <= everything.size * 1e-4


def test_zeros_nan_free_and_infinite_tensors():
    histogram = Histogram()
    zeros = np.zeros(100, np.float32)
    histogram.add(zeros, 0.0, 0.0)
    assert method_range(histogram, 0.0, 0.0, "mse") == (0.0, 0.0)
    values = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    histogram.add(values, 0.0, 1.0)  # the zeros seen first stay in 0's bin
    assert histogram.counts[-histogram.first] == 100 + 1 and histogram.counts.sum() == 1101
    histogram.add(np.array([np.inf], np.float32), 0.0, np.inf)
    assert not histogram.usable and histogram.to_json() is None
    assert method_range(histogram, 0.0, np.inf, "percentile") == (0.0, np.inf)


def test_a_tampered_histogram_entry_is_computed_again(tmp_path, caplog):
    from engine.quantize.cache import _digest

    values = _values(1)[:10_000]
    entry = {
        "bins": BINS,
        "ranges": {"3": [float(values.min()), float(values.max())]},
        "histograms": {"3": _histogram(values, images=1).to_json()},
    }
    cache = StatsCache(tmp_path)
    cache.put({"k": 1}, entry, images=4, skipped=0)
    assert cache.get({"k": 1}, TFLITE_STATISTICS).value == entry
    for counts in (
        base64.b64encode(zlib.compress(np.full(BINS, -1, "<i8").tobytes())).decode(),  # negative
        base64.b64encode(zlib.compress(np.ones(BINS - 1, "<i8").tobytes())).decode(),  # one short
        "not base64!",
    ):
        path = cache.entry({"k": 1})
        cache.put({"k": 1}, entry, images=4, skipped=0)
        stored = json.loads(path.read_text())
        stored.pop("digest")
        stored["value"]["histograms"]["3"]["counts"] = counts
        path.write_text(json.dumps({**stored, "digest": _digest(stored)}))
        caplog.clear()
        assert cache.get({"k": 1}, TFLITE_STATISTICS) is None
        assert "is corrupt" in caplog.text and not path.exists()


# ---------------------------------------------------------------- both quantizers, on a model built here


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory) -> Path:
    """A Keras model whose input is the known activation (64x64x1): Conv 1x1, ReLU, average, Dense."""
    import tf_keras as keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(4, 1, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("model") / "identity.h5"
    keras.Model(inputs, outputs).save(path)
    return path


def _images() -> np.ndarray:
    return _values().reshape(256, SIZE, SIZE, 1)


def _settings(quantizer: str, method: str):
    from engine.config.schema import Quantization

    return Quantization(
        quantizer=quantizer,
        quantization_input_type="int8",
        quantization_output_type="float",
        calibration_method=method,
    )


def _input_range(scale: float, zero: int) -> tuple[float, float]:
    return (-128 - zero) * scale, (127 - zero) * scale


def _tflite_input_range(path: Path) -> tuple[float, float]:
    from ai_edge_litert.interpreter import Interpreter

    scale, zero = Interpreter(model_path=str(path)).get_input_details()[0]["quantization"]
    return _input_range(scale, zero)


def _onnx_input_range(path: Path) -> tuple[float, float]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    node = next(n for n in graph.node if n.op_type == "QuantizeLinear")  # of the input (1x1 channel: reshaped)
    return _input_range(float(constants[node.input[1]]), int(constants[node.input[2]]))


def _check(method: str, low: float, high: float, route: str) -> None:
    """The input's int8 range of the quantized model against the range `method` gives the known activation, its
    histogram filled batch by batch as the route's calibration fills it."""
    histogram = _histogram(_values(), STATISTICS_BATCH if route == "tflite" else CALIBRATION_BATCH)
    values_low, step = float(_images().min()), histogram.step
    if method == "minmax":
        assert high == pytest.approx(OUTLIER, rel=1e-3) and low == pytest.approx(values_low, abs=0.5)
    elif route == "onnx" and method == "entropy":  # ONNX Runtime's own EntropyCalibrater: within the min/max
        assert values_low - 0.5 <= low < 0 < high <= OUTLIER * 1.01
    else:
        expected = method_range(histogram, values_low, OUTLIER, method)[1]
        if route == "onnx" and method == "percentile":  # ONNX Runtime's own, on its own |x| histogram
            expected = float(np.quantile(np.abs(_values()), 0.99999))
        assert high == pytest.approx(expected, abs=4 * step + 2 * (high - low) / 255), (method, high, expected)
        assert high < (25.0 if method == "mse" else 6.0), method


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy", "mse"])
def test_tflite_route(identity_model, tmp_path, method):
    from engine.quantize.tflite import quantize_tflite

    result = quantize_tflite(
        identity_model, ArrayCalibration(_images()), _settings("TFlite_converter", method), tmp_path / "m.tflite"
    )
    _check(method, *_tflite_input_range(result.model_path), "tflite")


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy", "mse"])
def test_onnx_route(identity_model, tmp_path, method):
    from engine.quantize.onnx import quantize_onnx

    result = quantize_onnx(
        identity_model,
        ArrayCalibration(_images()),
        _settings("Onnx_quantizer", method),
        tmp_path / "export",
        tmp_path / "work",
    )
    _check(method, *_onnx_input_range(result.model_path), "onnx")


def test_calibration_method_is_no_longer_an_onnx_only_key(tmp_path):
    from engine.config.schema import load_config_text
    from engine.config.unused_keys import unused_key_warnings

    text = """
general: {model_path: model.h5}
operation_mode: quantization
preprocessing: {rescaling: {scale: 1/127.5, offset: -1}, resizing: {interpolation: nearest}, color_mode: rgb}
quantization: {quantizer: TFlite_converter, quantization_type: PTQ, calibration_method: mse}
mlflow: {uri: mlruns}
"""
    config = load_config_text(text)
    assert config.quantization.calibration_method == "mse"
    assert not [w for w in unused_key_warnings(config) if "calibration_method" in w]


def test_statistics_of_a_model_with_nan_give_every_method_a_range_within_the_min_max():
    """NaN values (a square root of negative pixels) are left out of the histograms as of the min/max."""
    from engine.quantize.statistics import method_ranges, tensor_statistics, unpack
    from tests.test_statistics import _float_model, _square_root

    float_model = unpack(_float_model(_square_root()))
    images = np.random.default_rng(0).uniform(-1, 1, (12, 16, 16, 3)).astype(np.float32)
    statistics = tensor_statistics(float_model, ArrayCalibration(images), True)
    minmax = method_ranges(float_model, statistics, "minmax")
    for method in ("percentile", "entropy", "mse"):
        for tensor, (low, high) in method_ranges(float_model, statistics, method).items():
            assert minmax[tensor][0] <= low <= high <= minmax[tensor][1], (method, tensor)
    assert all(h.counts.sum() > 0 for h in statistics.histograms.values())
