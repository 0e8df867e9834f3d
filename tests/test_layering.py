"""Layering: the engine never imports Textual; the CLI starts without TensorFlow for quick commands, and the ONNX
route of an .onnx model runs without it."""

import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from tests.conftest import DEMO, ROOT
from tests.test_cli_errors import demo_config, write
from tests.tiny_models import tiny_onnx


def imported_after(code: str) -> str:
    """The names of the modules loaded after running `code` in a fresh process, one line of them."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    return proc.stdout.strip()


QUICK = "engine.cli, engine.config.schema, engine.run.preflight, engine.models.info, engine.footprint"


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str], set[str], Path]:
    """One fresh process: the modules loaded by the quick commands' modules, then by a run of the ONNX route of an
    .onnx model (quantize, evaluate, estimate with the ONNX quantizer; its run folder), then by every engine module."""
    tmp_path = tmp_path_factory.mktemp("onnx_route")
    model = tiny_onnx(tmp_path / "m.onnx")
    config = demo_config(
        tmp_path,
        operation_mode="chain_eqeb",
        general__model_path=str(model),
        dataset__test_path=str(DEMO / "digits"),
        quantization__quantizer="Onnx_quantizer",
        quantization__quantization_input_type="float",
    )
    args = ["run", write(tmp_path, config), "--output-dir", str(tmp_path / "run"), "--progress", "none"]
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.") if not m.name.endswith("__main__")]
    imports = "\n".join(f"import {m}" for m in modules)
    printed = "print(' '.join(sorted(sys.modules)))"
    run = f"from engine.cli import main\nassert main({args!r}) == 0"
    lines = imported_after(f"import sys\nimport {QUICK}\n{printed}\n{run}\n{printed}\n{imports}")
    quick, *_, onnx_route, every = lines.splitlines()  # the run prints its own lines between the first two
    return set(quick.split()), set(every.split()), set(onnx_route.split()), tmp_path / "run"


def test_engine_never_imports_textual(probed):
    assert not {m for m in probed[1] if m == "textual" or m.startswith("textual.")}


def test_cli_and_config_start_without_tensorflow(probed):
    assert "engine.cli" in probed[0] and not probed[0] & {"tensorflow", "tf_keras", "keras", "onnxruntime", "textual"}
    assert "engine.quantize.tflite" in probed[1]  # the last list is every module's: the probe can fail


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (dev extra)")
def test_import_linter_contracts():
    proc = subprocess.run(
        ["lint-imports"], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_onnx_route_of_an_onnx_model_runs_without_tensorflow(probed):
    """Quantize, evaluate and estimate an .onnx model with the ONNX quantizer: TensorFlow is never imported."""
    _, _, loaded, run_dir = probed
    assert {"onnxruntime", "engine.evaluation.accuracy"} <= loaded
    assert not loaded & {"tensorflow", "tf_keras", "keras", "tf2onnx"}
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "ok" and summary["accuracy"]["agreement"] is not None and summary["footprint"]
