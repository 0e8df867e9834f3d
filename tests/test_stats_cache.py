"""The statistics cache: hits for what does not change the statistics, misses for every cause that does."""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.data.calibration import ImageCalibrationData
from engine.data.preprocess import ImageSpec
from engine.quantize.cache import Entry, StatsCache, cache_folder
from engine.quantize.common import ModelMemo
from engine.quantize.onnx import quantize_onnx
from engine.quantize.tflite import quantize_tflite
from tests.conftest import DEMO
from tests.test_cli_errors import demo_config, write
from tests.test_quantize_tflite import settings

SPEC = ImageSpec(32, 32, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """40 real demo images, copied so that a test may touch or remove them."""
    folder = tmp_path / "photos"
    folder.mkdir()
    files = sorted((DEMO / "digits").glob("*/*.png"))[:40]
    return [Path(shutil.copy(f, folder / f"{i}_{f.name}")) for i, f in enumerate(files)]


@pytest.fixture
def model(tmp_path) -> Path:
    return Path(shutil.copy(DEMO / "digits_cnn.h5", tmp_path / "model.h5"))


@pytest.fixture(scope="module")
def loaded() -> tuple:
    """The demo model loaded once and a memo of what its quantizations share (its trace, its ONNX conversion), as
    `stquant compare` quantizes one loaded model several ways; cache keys are of the model file, not of these."""
    from engine.models.load import load_keras_model

    return load_keras_model(DEMO / "digits_cnn.h5"), ModelMemo()


def statistics_entries(folder: Path) -> list[Path]:
    """The entries of `folder` that hold statistics (not the TFLite converter's float model kept beside them)."""
    return [p for p in folder.glob("*.json") if "float_graph_of" not in json.loads(p.read_text())["key"]]


def test_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_folder() == tmp_path / "stquant" / "statistics"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_folder() == Path.home() / ".cache" / "stquant" / "statistics"


def test_round_trip_and_corrupt_entry_is_ignored_with_a_warning(tmp_path, caplog):
    cache = StatsCache(tmp_path)
    key = {"model": "abc", "files": [["a.jpg", 10, 5]]}
    assert cache.get(key) is None
    cache.put(key, {"0": [-1.0, 2.5]}, images=9, skipped=1)
    assert cache.get(key) == Entry({"0": [-1.0, 2.5]}, images=9, skipped=1)
    assert cache.get({**key, "model": "abd"}) is None
    cache.entry(key).write_text('{"format": 2, "key": ')  # truncated by a crash of some other tool
    with caplog.at_level(logging.WARNING, logger="engine.quantize.cache"):
        assert cache.get(key) is None
    assert "corrupt" in caplog.text and not cache.entry(key).exists()
    assert not list(tmp_path.glob("*.part"))


def test_an_entry_of_the_first_format_is_computed_again_silently(tmp_path, caplog):
    cache = StatsCache(tmp_path)
    key = {"model": "abc"}
    cache.entry(key).write_text(json.dumps({"format": 1, "key": key, "value": {"0": [-1.0, 2.5]}}))
    with caplog.at_level(logging.WARNING, logger="engine.quantize.cache"):
        assert cache.get(key) is None
    assert not caplog.text
    cache.put(key, {"0": [0.0, 1.0]}, images=3, skipped=0)
    assert cache.get(key).value == {"0": [0.0, 1.0]}


def test_least_recently_used_entries_go_over_the_cap(tmp_path):
    cache = StatsCache(tmp_path, max_bytes=2500)
    value = "x" * 1000
    for name in ("a", "b"):
        cache.put({"k": name}, value, 1, 0)
    os.utime(cache.entry({"k": "a"}), (1, 1))
    os.utime(cache.entry({"k": "b"}), (2, 2))
    assert cache.get({"k": "a"}).value == value  # a is now the most recently used
    cache.put({"k": "c"}, value, 1, 0)
    assert cache.entry({"k": "a"}).exists() and cache.entry({"k": "c"}).exists()
    assert not cache.entry({"k": "b"}).exists()


def test_what_is_derived_from_an_entry_is_computed_once_per_name_while_the_cache_lives(tmp_path):
    computed = []

    def compute(value: int):
        return lambda: computed.append(value) or value

    cache = StatsCache(tmp_path)
    assert cache.derived({"k": "a"}, "mse", compute(1)) == 1
    assert cache.derived({"k": "a"}, "mse", compute(2)) == 1
    assert cache.derived({"k": "a"}, "entropy", compute(3)) == 3
    assert cache.derived({"k": "b"}, "mse", compute(4)) == 4
    assert StatsCache(tmp_path).derived({"k": "a"}, "mse", compute(5)) == 5, "in memory only"
    assert computed == [1, 3, 4, 5]


def _tflite(loaded, model, files, tmp_path, cache, spec=SPEC, selection=None, **changes):
    """Quantize the file `model` (the demo model or a copy), `loaded` already (the `loaded` fixture)."""
    calibration = ImageCalibrationData(files, spec, "test", selection or {"seed": 0, "split": 1.0})
    out = tmp_path / f"q{len(list(tmp_path.glob('q*.tflite')))}.tflite"
    keras_model, memo = loaded
    return quantize_tflite(model, calibration, settings(**changes), out, cache=cache, model=keras_model, memo=memo)


def test_tflite_hits_for_granularity_and_io_types_and_gives_the_same_model(model, photos, tmp_path, loaded):
    cache = StatsCache(tmp_path / "cache")
    broken = photos[0].with_name("broken.png")
    broken.write_bytes(b"not a png")
    first = _tflite(loaded, model, [*photos, broken], tmp_path, cache, granularity="per_tensor")
    assert not first.statistics_cached
    assert (first.calibration_images, first.calibration_skipped) == (40, 1)
    again = _tflite(loaded, model, [*photos, broken], tmp_path, cache, granularity="per_tensor")
    assert again.statistics_cached and (again.calibration_images, again.calibration_skipped) == (40, 1)
    assert again.model_path.read_bytes() == first.model_path.read_bytes()
    fresh = _tflite(loaded, model, [*photos, broken], tmp_path, None, granularity="per_tensor")
    assert fresh.model_path.read_bytes() == first.model_path.read_bytes()
    assert _tflite(loaded, model, [*photos, broken], tmp_path, cache, granularity="per_channel").statistics_cached
    assert _tflite(
        loaded,
        model,
        [*photos, broken],
        tmp_path,
        cache,
        quantization_input_type="uint8",
        quantization_output_type="float",
    ).statistics_cached


def test_tflite_misses_for_every_cause(model, photos, tmp_path, loaded):
    cache = StatsCache(tmp_path / "cache")
    assert not _tflite(loaded, model, photos, tmp_path, cache).statistics_cached
    assert not _tflite(loaded, model, photos[:-1], tmp_path, cache).statistics_cached, "one file less"
    assert not _tflite(
        loaded, model, photos, tmp_path, cache, spec=ImageSpec(32, 32, 3, "bilinear", scale=1 / 127.5, offset=-1.0)
    ).statistics_cached, "preprocessing"
    seed, split = {"seed": 1, "split": 1.0}, {"seed": 0, "split": 0.5}
    assert not _tflite(loaded, model, photos, tmp_path, cache, selection=seed).statistics_cached, "seed"
    assert not _tflite(loaded, model, photos, tmp_path, cache, selection=split).statistics_cached, "split"
    info = photos[3].stat()
    os.utime(photos[3], ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert not _tflite(loaded, model, photos, tmp_path, cache).statistics_cached, "mtime"
    photos[5].write_bytes(photos[5].read_bytes() + b"\0")
    assert not _tflite(loaded, model, photos, tmp_path, cache).statistics_cached, "size"
    assert _tflite(loaded, model, photos, tmp_path, cache).statistics_cached
    assert not _tflite(
        loaded, model, photos, tmp_path, cache, optimize=True, granularity="per_tensor"
    ).statistics_cached, "optimize changes the graph"
    with open(model, "ab") as stream:  # same weights, another file: the model file's hash is part of the key
        stream.write(b"\0")
    assert not _tflite(loaded, model, photos, tmp_path, cache).statistics_cached, "model file"


def test_tflite_histograms_serve_every_calibration_method(model, photos, tmp_path, loaded):
    """minmax measures no histograms; the first other method measures them, and that one entry then serves every
    method, minmax included (its min/max are the same)."""
    cache = StatsCache(tmp_path / "cache")
    minmax = _tflite(loaded, model, photos, tmp_path, cache)
    assert not minmax.statistics_cached
    percentile = _tflite(loaded, model, photos, tmp_path, cache, calibration_method="percentile")
    assert not percentile.statistics_cached, "the minmax entry holds no histograms"
    assert percentile.model_path.read_bytes() != minmax.model_path.read_bytes()
    for method in ("entropy", "mse", "percentile"):
        result = _tflite(loaded, model, photos, tmp_path, cache, calibration_method=method)
        assert result.statistics_cached, method
    assert result.model_path.read_bytes() == percentile.model_path.read_bytes(), "percentile's ranges, derived once"
    fresh = StatsCache(tmp_path / "fresh")
    assert not _tflite(loaded, model, photos, tmp_path, fresh, calibration_method="mse").statistics_cached
    again = _tflite(loaded, model, photos, tmp_path, fresh)
    assert again.statistics_cached and again.model_path.read_bytes() == minmax.model_path.read_bytes()
    assert len(statistics_entries(fresh.folder)) == 1


def test_onnx_hits_for_granularity_and_misses_for_another_method(model, photos, tmp_path, loaded):
    cache = StatsCache(tmp_path / "cache")

    def quantize(**changes):
        calibration = ImageCalibrationData(photos, SPEC, "test", {"seed": 0, "split": 1.0})
        return quantize_onnx(
            model,
            calibration,
            settings(quantizer="Onnx_quantizer", **changes),
            tmp_path / "out",
            tmp_path / "work",
            cache=cache,
            model=loaded[0],
            memo=loaded[1],
        )

    first = quantize()
    assert not first.statistics_cached and (first.calibration_images, first.calibration_skipped) == (40, 0)
    params = _qdq_params(first.model_path)
    again = quantize()
    assert again.statistics_cached and _qdq_params(again.model_path) == params
    assert (again.calibration_images, again.calibration_skipped) == (40, 0)
    assert quantize(granularity="per_tensor").statistics_cached
    assert not quantize(calibration_method="percentile").statistics_cached, "calibration method"
    assert quantize(calibration_method="percentile").statistics_cached  # its ranges are 0-d arrays: still valid
    assert not quantize(calibration_method="mse").statistics_cached, "calibration method"
    assert quantize(calibration_method="mse").statistics_cached


def _qdq_params(path: Path) -> list:
    """Every scale and zero point of a QDQ model, sorted (tf2onnx names and orders constants differently per conversion)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    found = [
        tuple(np.ravel(constants[name]).tolist() for name in node.input[1:3])
        for node in graph.node
        if node.op_type == "QuantizeLinear"
    ]
    assert len(found) > 5
    return sorted(found)


def test_run_summary_says_where_statistics_came_from_and_no_cache(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path))

    def statistics(*extra):
        assert main(["run", config, "--progress", "none", *extra]) == 0
        run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
        calibration = json.loads((run_dir / "run_summary.json").read_text())["calibration"]
        assert (calibration["images"], calibration["skipped"]) == (120, 0)  # the images the ranges come from
        return calibration["statistics"]

    assert statistics() == "computed"
    assert statistics("quantization.granularity=per_tensor") == "cache"
    assert statistics("quantization.quantization_input_type=int8", "--no-cache") == "computed"
    assert len(statistics_entries(cache_folder())) == 1
