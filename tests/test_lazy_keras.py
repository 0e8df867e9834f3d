"""The Keras model is loaded only when a stage needs it: the TFLite converter's float model is kept in the statistics
cache, so a later run quantizes from it; `keras_loaded_by` in run_summary.json says what needed the model."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT
from tests.test_cli_errors import demo_config, run_captured, write
from tests.test_run import run_ok

# In a fresh process (TF_USE_LEGACY_KERAS unset there, so `import tensorflow` does not import tf_keras by itself): a
# cached quantization, then the same once the float model kept beside the statistics is removed from the cache.
CACHED_THEN_WITHOUT_THE_FLOAT_MODEL = """
import json, sys
from pathlib import Path
from engine.quantize.cache import cache_folder
from tests.lazy_quantize import quantize

model, images, out = map(Path, sys.argv[1:4])
cached = quantize(model, images, "per_tensor", out / "cached.tflite")
kept = [p for p in cache_folder().glob("*.json") if "float_graph_of" in json.loads(p.read_text())["key"]]
for entry in kept:
    entry.unlink()
again = quantize(model, images, "per_tensor", out / "again.tflite")
print(json.dumps({"cached": cached, "removed": len(kept), "again": again}))
"""


def test_a_cached_quantization_never_loads_the_keras_model(tmp_path):
    """Proved twice: nothing asked the LazyKerasModel for the model, and the package that would load it was never
    imported (the same fresh process then imports it once the quantization needs the model: the check can fail)."""
    from tests.lazy_quantize import quantize

    first = quantize(DEMO / "digits_cnn.h5", DEMO / "digits", "per_channel", tmp_path / "first.tflite")
    first.pop("tf_keras")  # this process's modules say nothing about what the quantization imported
    assert first == {"needed_by": ["convert"], "cached": False, "float_model_is_lazy": True}
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", CACHED_THEN_WITHOUT_THE_FLOAT_MODEL, str(DEMO / "digits_cnn.h5"), str(DEMO / "digits"),
         str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["cached"] == {"needed_by": [], "tf_keras": False, "cached": True, "float_model_is_lazy": True}
    assert found["removed"] == 1  # the float model beside the statistics
    # without it, the same quantization converts the Keras model again: same bytes
    assert found["again"] == {"needed_by": ["convert"], "tf_keras": True, "cached": True, "float_model_is_lazy": True}
    assert (tmp_path / "cached.tflite").read_bytes() == (tmp_path / "again.tflite").read_bytes()


def _run(capsys, tmp_path: Path, name: str, *extra: str, **changes) -> dict:
    config = write(tmp_path, demo_config(tmp_path, **changes), f"{name}.yaml")
    summary, _ = run_ok(capsys, config, "--output-dir", str(tmp_path / name), *extra)
    return summary


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[dict, Path]:
    """One run of the demo config, which caches its statistics and float model: its summary and its cache's folder."""
    folder = tmp_path_factory.mktemp("first")
    config = write(folder, demo_config(folder), "first.yaml")
    argv = ["run", config, "--output-dir", str(folder / "first"), "--progress", "none"]
    code, _, err = run_captured(argv, folder / "xdg_cache")
    assert code == 0, err
    return json.loads((folder / "first" / "run_summary.json").read_text()), folder / "xdg_cache"


@pytest.fixture
def after_first_run(first_run, tmp_path, monkeypatch) -> dict:
    """This test's statistics cache: a copy of the first run's; that run's summary."""
    summary, cache = first_run
    shutil.copytree(cache, tmp_path / "xdg_cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    return summary


def _same_figures(cached: dict, uncached: dict) -> None:
    for key in ("layer_errors", "footprint", "accuracy", "optimization"):
        assert cached[key] == uncached[key], key
    where = {"statistics": "", "quantized_model": ""}  # the cache or this run
    assert {**cached["calibration"], **where} == {**uncached["calibration"], **where}
    model = Path(cached["quantized_model"]).read_bytes()
    assert model == Path(uncached["quantized_model"]).read_bytes()


def test_a_cached_run_never_loads_the_keras_model(tmp_path, capsys, after_first_run):
    """The per-layer report runs the float ops of the converter's float graph, not the Keras layers: a run whose float
    graph is kept loads no Keras model at all, with the same figures as one that converts the model."""
    first = after_first_run
    assert first["keras_loaded_by"] == ["convert"] and first["layer_errors"]
    cached = _run(capsys, tmp_path, "cached", "quantization.granularity=per_tensor")
    assert cached["calibration"]["statistics"] == "cache" and cached["keras_loaded_by"] == []
    log = (tmp_path / "cached" / "stquant.log").read_text()
    assert "float model from the statistics cache" in log
    uncached = _run(capsys, tmp_path, "uncached", "quantization.granularity=per_tensor", "--no-cache")
    assert uncached["keras_loaded_by"] == ["convert"]
    _same_figures(cached, uncached)


def test_the_evaluations_threads(tmp_path, capsys, after_first_run, litert_threads):
    """The float graph kept by the first run is evaluated beside TensorFlow's import on the cores the import leaves
    (again on every core if it starts after the import), the int8 model on every usable core."""
    from engine.common.threads import spare_cores, usable_cores

    summary = _run(capsys, tmp_path, "chain", operation_mode="chain_eqe", dataset__test_path=str(DEMO / "digits"))
    assert summary["accuracy"]["runtime"]["float"].endswith("(as converted for quantization)")
    evaluations = [made for made in litert_threads if made[1] is not None]  # the per-layer report gives no threads
    assert evaluations[0] == ("content", spare_cores()) and evaluations[-1] == (
        "quantized_model.tflite",
        usable_cores(),
    )
    assert evaluations[1:-1] in ([], [("content", usable_cores())]), evaluations


def test_optimize_and_evaluation_load_the_keras_model_with_the_same_figures(tmp_path, capsys, after_first_run):
    # statistics and float model cached by the first run
    optimize = ("quantization.optimize=True", "quantization.granularity=per_tensor")
    optimized = _run(capsys, tmp_path, "optimized", *optimize)
    assert optimized["keras_loaded_by"] == ["optimize"] and optimized["optimization"]  # the report reads its copy
    uncached = _run(capsys, tmp_path, "optimized_uncached", *optimize, "--no-cache")
    _same_figures(optimized, uncached)
    chain = {"operation_mode": "chain_eqe", "dataset__test_path": str(DEMO / "digits")}
    evaluated = _run(capsys, tmp_path, "chain", **chain)
    # the float graph kept in the cache is evaluated while TensorFlow is imported: no stage needs the Keras model
    assert evaluated["keras_loaded_by"] == []
    stages = list(evaluated["timings"])
    assert stages.index("evaluate_float") < stages.index("calibration") and "float_model" not in stages
    assert evaluated["accuracy"]["runtime"]["float"].endswith("(as converted for quantization)")
    uncached = _run(capsys, tmp_path, "chain_uncached", "--no-cache", **chain)
    assert uncached["keras_loaded_by"] == ["evaluate", "convert"]
    assert list(uncached["timings"]).index("evaluate_float") > list(uncached["timings"]).index("calibration")
    # the first run kept its quantized model too: this chain's was not converted, and TensorFlow was not imported
    assert evaluated["calibration"]["quantized_model"] == "cache" and "import_tensorflow" not in stages
    assert uncached["calibration"]["quantized_model"] == "converted"
    _same_figures(evaluated, uncached)
    for png in ("float_model_confusion_matrix_test_set.png", "quantized_model_confusion_matrix_test_set.png"):
        assert (tmp_path / "chain" / png).read_bytes() == (tmp_path / "chain_uncached" / png).read_bytes()


def test_a_kept_float_model_that_is_no_tflite_is_ignored_and_converted_again(tmp_path, caplog):
    """A hostile edit (the entry's digest made to match): the entry is dropped with one warning, the Keras model is
    converted again and gives the same quantized model."""
    import base64
    import logging

    from engine.data.calibration import ImageCalibrationData
    from engine.models.load import LazyKerasModel
    from engine.quantize.cache import StatsCache, _digest
    from engine.quantize.tflite import quantize_tflite
    from tests.test_quantize_tflite import settings
    from tests.test_stats_cache import SPEC

    files = sorted((DEMO / "digits").glob("*/*.png"))[:16]
    cache = StatsCache(tmp_path / "cache")

    def quantize(name: str) -> LazyKerasModel:
        lazy = LazyKerasModel(DEMO / "digits_cnn.h5")
        calibration = ImageCalibrationData(files, SPEC, "test", {"seed": 0, "split": 1.0})
        quantize_tflite(lazy.path, calibration, settings(), tmp_path / name, model=lazy, cache=cache)
        return lazy

    assert quantize("first.tflite").needed_by == ["convert"]
    assert quantize("cached.tflite").needed_by == []
    [entry] = [p for p in cache.folder.glob("*.json") if "float_graph_of" in json.loads(p.read_text())["key"]]
    stored = json.loads(entry.read_text())
    stored.pop("digest")
    stored["value"]["tflite"] = base64.b64encode(b"\0" * 64).decode()
    entry.write_text(json.dumps({**stored, "digest": _digest(stored)}))
    with caplog.at_level(logging.WARNING, logger="engine.quantize.cache"):
        assert quantize("again.tflite").needed_by == ["convert"]
    assert caplog.text.count("is corrupt") == 1
    assert (tmp_path / "again.tflite").read_bytes() == (tmp_path / "first.tflite").read_bytes()
    assert quantize("cached_again.tflite").needed_by == []  # stored anew


# In a fresh process: runs whose statistics, float graph and quantized model the first run kept (quantization, then
# chain_eqe), then one with another granularity, which converts; whether TensorFlow was imported after each.
CACHED_RUNS = """
import json, sys
from pathlib import Path
from engine.cli import main

config, out, test_path = sys.argv[1:4]

def run(name, *overrides):
    argv = ["run", config, "--output-dir", str(Path(out) / name), "--progress", "none", *overrides]
    assert main(argv) == 0
    summary = json.loads((Path(out) / name / "run_summary.json").read_text())
    return {"summary": summary, "tensorflow": "tensorflow" in sys.modules}

runs = [run("quantization"), run("chain", "operation_mode=chain_eqe", f"dataset.test_path={test_path}"),
        run("per_tensor", "quantization.granularity=per_tensor")]
print(json.dumps(runs))
"""


def test_a_fully_cached_run_never_imports_tensorflow(tmp_path, after_first_run):
    """The quantized model, its per-layer report, its footprint, and in a chain both evaluations, without TensorFlow: the
    same figures and model as the run that converted. A run that must convert imports it (the check can fail)."""
    first = after_first_run
    config = write(tmp_path, demo_config(tmp_path), "cached.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CACHED_RUNS, config, str(tmp_path), str(DEMO / "digits")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    quantization, chain, per_tensor = json.loads(done.stdout.strip().splitlines()[-1])
    assert (quantization["tensorflow"], chain["tensorflow"], per_tensor["tensorflow"]) == (False, False, True)
    for cached in (quantization["summary"], chain["summary"]):
        assert cached["calibration"]["quantized_model"] == "cache" and cached["keras_loaded_by"] == []
        assert "import_tensorflow" not in cached["timings"]
        for key in ("layer_errors", "footprint"):
            assert cached[key] == first[key], key
        assert Path(cached["quantized_model"]).read_bytes() == Path(first["quantized_model"]).read_bytes()
    accuracy = chain["summary"]["accuracy"]
    assert accuracy["float"] is not None and accuracy["quantized"] is not None and accuracy["agreement"] is not None
    assert per_tensor["summary"]["calibration"] == {**first["calibration"], "statistics": "cache"}


def test_a_corrupt_kept_quantized_model_is_converted_again(tmp_path, capsys, after_first_run):
    """A hostile edit (not a .tflite, its digest made to match): one warning, the entry removed, the model converted
    again (the same bytes) and stored anew; the next run takes it from the cache."""
    import base64

    from engine.quantize.cache import _digest, cache_folder
    from tests.test_stats_cache import quantized_entries

    first = after_first_run
    [entry] = quantized_entries(cache_folder())
    good = entry.read_bytes()
    stored = json.loads(good)
    stored.pop("digest")
    stored["value"]["tflite"] = base64.b64encode(b"\0" * 64).decode()
    entry.write_text(json.dumps({**stored, "digest": _digest(stored)}))
    again = _run(capsys, tmp_path, "again")
    log = (tmp_path / "again" / "stquant.log").read_text()
    assert log.count("is corrupt") == 1 and str(entry.name) in log
    assert again["calibration"] == {**first["calibration"], "statistics": "cache", "quantized_model": "converted"}
    assert Path(again["quantized_model"]).read_bytes() == Path(first["quantized_model"]).read_bytes()
    assert entry.read_bytes() == good  # stored anew
    assert _run(capsys, tmp_path, "cached")["calibration"]["quantized_model"] == "cache"
