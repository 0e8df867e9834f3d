"""What an engine child process loads before it needs it: the wizard starts a `stquant validate` at every check
and a `stquant run` per run, so their start-up is paid again and again (#23). Fails when an import made lazy
comes back to module level, or a run builds the event models of compare, recover and sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sample_configs" / "quantization_config.yaml"
# Not needed to find a config's problems: numpy, Pillow, h5py and the model readers come with the model check.
MODEL_CHECK = ("numpy", "PIL", "h5py", "engine.models.info", "engine.models.keras_lambda", "engine.data.preprocess")
ML_RUNTIMES = ("tensorflow", "tf_keras", "keras", "onnx", "onnxruntime", "ai_edge_litert")

CHILD = """
import io, json, sys
from engine.cli import main

found = {{"problem_code": main(["validate", {bad!r}])}}
found["problem_loaded"] = [m for m in {model_check!r} if m in sys.modules]
found["demo_code"] = main(["validate", {demo!r}])
found["demo_loaded"] = [m for m in {runtimes!r} if m in sys.modules]

from engine.run import comparison, protocol, recovery, sweep_record
from engine.run.events import JsonLinesReporter
from engine.run.summary import RunSummary

reporter = JsonLinesReporter(io.StringIO())
reporter.stage("prepare")
reporter.progress("calibration", 1, 1)
reporter.log("INFO", "a line")
reporter.result(RunSummary(operation_mode="quantization", run_dir="/run"))
modules = (comparison, protocol, recovery, sweep_record)
models = [getattr(m, n) for m in modules for n in dir(m)]
found["built"] = sorted(
    m.__name__ for m in models if getattr(m, "__pydantic_complete__", False) and sys.modules[m.__module__] in modules
)
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One child process: validate a config with a problem, then the demo config, then report a run's events."""
    text = DEMO.read_text().replace("demo/", f"{DEMO.parent}/demo/")
    bad = tmp_path_factory.mktemp("config") / "bad.yaml"
    bad.write_text(text.replace("  quantization_split: 0.4\n", "  quantization_split: 0.4\n  seeed: 1\n"))
    script = CHILD.format(bad=str(bad), demo=str(DEMO), model_check=MODEL_CHECK, runtimes=ML_RUNTIMES)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dataset.seeed: unknown key; did you mean seed?" in done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_validate_finds_a_config_problem_without_the_model_readers(loaded: dict[str, object]) -> None:
    assert loaded["problem_code"] == 2
    assert loaded["problem_loaded"] == []


def test_validate_checks_a_keras_model_without_an_ml_runtime(loaded: dict[str, object]) -> None:
    assert loaded["demo_code"] == 0
    assert loaded["demo_loaded"] == []


def test_a_run_builds_only_the_event_models_it_emits(loaded: dict[str, object]) -> None:
    assert loaded["built"] == ["LogEvent", "ProgressEvent", "ResultEvent", "StageEvent"]
