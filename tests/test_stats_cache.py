"""The statistics cache: hits for what does not change the statistics, misses for every cause that does."""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.config.schema import Quantization
from engine.data.calibration import ImageCalibrationData
from engine.data.preprocess import ImageSpec
from engine.quantize import tflite
from engine.quantize.cache import QUANTIZED_FROM, Entry, StatsCache, cache_folder
from engine.quantize.common import ModelMemo
from engine.quantize.onnx import quantize_onnx
from engine.quantize.tflite import quantize_tflite, quantized_key
from tests.conftest import DEMO
from tests.test_cli_errors import demo_config, write
from tests.test_quantize_tflite import settings

SPEC = ImageSpec(32, 32, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)
MODEL_ENTRIES = {"float_graph_of", "quantized_from"}  # a key field of each kind of model entry


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
    """The entries of `folder` that hold statistics (not the TFLite converter's float or quantized model kept beside
    them)."""
    return [p for p in folder.glob("*.json") if not json.loads(p.read_text())["key"].keys() & MODEL_ENTRIES]


def quantized_entries(folder: Path) -> list[Path]:
    """The entries of `folder` that hold a quantized model the TFLite converter made."""
    return [p for p in folder.glob("*.json") if "quantized_from" in json.loads(p.read_text())["key"]]


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


def test_remove_takes_only_the_entries_of_one_kind(tmp_path):
    cache = StatsCache(tmp_path)
    for key in ({"quantized_from": "a"}, {"quantized_from": "b", "settings": {}}, {"float_graph_of": "a"}, {"m": 1}):
        cache.put(key, "value", 1, 0)
    (tmp_path / "broken.json").write_text("[1, 2")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert cache.remove(QUANTIZED_FROM) == 2
    kept = {cache.entry({"float_graph_of": "a"}).name, cache.entry({"m": 1}).name, "broken.json", "list.json"}
    assert {p.name for p in tmp_path.glob("*.json")} == kept


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


def test_a_kept_quantized_model_is_the_converters_very_bytes(model, photos, tmp_path, loaded):
    """Per tensor and per channel, uint8, int8 and float inputs: the second quantization takes its model from the cache
    and it is byte-identical to the first's and to a conversion without a cache; so is the float graph it reports."""
    cache = StatsCache(tmp_path / "cache")
    cases = [
        {"granularity": "per_tensor", "quantization_input_type": "uint8"},
        {"granularity": "per_channel", "quantization_input_type": "int8"},
        {"granularity": "per_channel", "quantization_input_type": "float", "quantization_output_type": "float"},
    ]
    for changes in cases:
        first = _tflite(loaded, model, photos, tmp_path, cache, **changes)
        again = _tflite(loaded, model, photos, tmp_path, cache, **changes)
        fresh = _tflite(loaded, model, photos, tmp_path, None, **changes)
        assert [r.quantized_cached for r in (first, again, fresh)] == [False, True, False], changes
        assert again.model_path.read_bytes() == first.model_path.read_bytes() == fresh.model_path.read_bytes()
        assert again.float_tflite == first.float_tflite == fresh.float_tflite is not None
        assert (again.statistics_cached, again.calibration_images, again.calibration_skipped) == (True, 40, 0)
    assert len(quantized_entries(cache.folder)) == len(cases)


def test_every_input_of_the_quantized_models_key_changes_it(monkeypatch):
    """The float graph, the statistics' key and content, every quantization setting but `export_dir`, the libraries'
    versions and the engine's quantizing code are each in the key."""
    statistics = ({"float_graph": "f", "calibration": {"files": [["a.png", 1, 2]]}}, "digest")
    base = settings()
    key = quantized_key(b"float graph", statistics, base)
    other_settings = {
        "quantizer": "Onnx_quantizer",
        "quantization_input_type": "uint8",
        "quantization_output_type": "float",
        "granularity": "per_tensor",
        "optimize": True,
        "target_opset": 13,
        "extra_options": "calib_moving_average",
        "calibration_method": "mse",
        "bias_correction": True,
        "float_layers": ["conv2d"],
    }
    assert {*other_settings, "quantization_type", "export_dir"} == set(Quantization.model_fields)  # PTQ: one value
    changed = {
        name: quantized_key(b"float graph", statistics, settings(**{name: v})) for name, v in other_settings.items()
    }
    changed["float graph"] = quantized_key(b"other graph", statistics, base)
    changed["statistics key"] = quantized_key(b"float graph", ({**statistics[0], "calibration": {}}, "digest"), base)
    changed["statistics content"] = quantized_key(b"float graph", (statistics[0], "other"), base)
    with monkeypatch.context() as patch:
        patch.setattr(tflite, "_code_digest", lambda: "another engine")
        changed["code"] = quantized_key(b"float graph", statistics, base)
    with monkeypatch.context() as patch:
        patch.setattr(tflite, "versions", lambda *names: dict.fromkeys(names, "0.0"))
        changed["versions"] = quantized_key(b"float graph", statistics, base)
    assert [name for name, other in changed.items() if other == key] == []
    assert quantized_key(b"float graph", statistics, settings(export_dir="elsewhere")) == key
    assert quantized_key(b"float graph", None, base) is None  # statistics not cached: nothing kept


def test_a_changed_input_of_the_key_converts_anew(model, photos, tmp_path, loaded, monkeypatch):
    cache = StatsCache(tmp_path / "cache")
    reference = _tflite(loaded, model, photos, tmp_path, cache)
    assert not reference.quantized_cached and _tflite(loaded, model, photos, tmp_path, cache).quantized_cached
    assert not _tflite(loaded, model, photos, tmp_path, cache, granularity="per_tensor").quantized_cached, "a setting"
    assert not _tflite(loaded, model, photos[:-1], tmp_path, cache).quantized_cached, "the calibration images"
    [entry] = [
        p
        for p in statistics_entries(cache.folder)
        if len(json.loads(p.read_text())["key"]["calibration"]["files"]) == 40
    ]
    _rewrite_value(
        entry, lambda value: value["ranges"].update({t: [2 * a, 2 * b] for t, (a, b) in value["ranges"].items()})
    )
    widened = _tflite(loaded, model, photos, tmp_path, cache)
    assert widened.statistics_cached and not widened.quantized_cached, "the statistics' content"
    assert widened.model_path.read_bytes() != reference.model_path.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(tflite, "versions", lambda *names: dict.fromkeys(names, "0.0"))
        assert not _tflite(loaded, model, photos, tmp_path, cache).quantized_cached, "a library's version"
    with monkeypatch.context() as patch:
        patch.setattr(tflite, "_code_digest", lambda: "another engine")
        assert not _tflite(loaded, model, photos, tmp_path, cache).quantized_cached, "the engine's code"
    with open(model, "ab") as stream:  # another file: another float graph entry, other statistics
        stream.write(b"\0")
    assert not _tflite(loaded, model, photos, tmp_path, cache).quantized_cached, "the model file"


def _rewrite_value(path: Path, change) -> None:
    """Change an entry's value (still well formed) and give it a matching digest."""
    from engine.quantize.cache import _digest

    stored = json.loads(path.read_text())
    stored.pop("digest")
    change(stored["value"])
    path.write_text(json.dumps({**stored, "digest": _digest(stored)}))


def test_variants_in_one_memory_cache_do_not_collide(model, photos, tmp_path, loaded):
    """As `stquant compare --no-cache` keeps its entries: in memory, nothing on disk; each variant served its own."""
    cache = StatsCache(tmp_path / "memory", persist=False)
    variants = [
        {"granularity": g, "quantization_input_type": t}
        for g in ("per_channel", "per_tensor")
        for t in ("uint8", "int8")
    ]
    first = [_tflite(loaded, model, photos, tmp_path, cache, **variant) for variant in variants]
    again = [_tflite(loaded, model, photos, tmp_path, cache, **variant) for variant in variants]
    assert [(r.quantized_cached, s.quantized_cached) for r, s in zip(first, again)] == [(False, True)] * 4
    assert [r.model_path.read_bytes() for r in again] == [r.model_path.read_bytes() for r in first]
    assert len({r.model_path.read_bytes() for r in first}) == 4
    assert not (tmp_path / "memory").exists()


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
        out = capsys.readouterr().out
        run_dir = Path(out.strip().splitlines()[-1])
        calibration = json.loads((run_dir / "run_summary.json").read_text())["calibration"]
        assert (calibration["images"], calibration["skipped"]) == (120, 0)  # the images the ranges come from
        assert ("quantized model from the cache" in out) is (calibration["quantized_model"] == "cache")
        return calibration["statistics"], calibration["quantized_model"]

    assert statistics() == ("computed", "converted")
    assert statistics("quantization.granularity=per_tensor") == ("cache", "converted")
    assert statistics("quantization.granularity=per_tensor") == ("cache", "cache")
    assert statistics("quantization.granularity=per_tensor", "--no-cache") == ("computed", "converted")
    assert statistics("quantization.quantization_input_type=int8", "--no-cache") == ("computed", "converted")
    assert len(statistics_entries(cache_folder())) == 1
    assert len(quantized_entries(cache_folder())) == 2  # none of the runs with --no-cache
