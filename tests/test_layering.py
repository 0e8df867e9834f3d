"""Layering: the engine never imports Textual; the CLI starts without TensorFlow for quick commands, and the ONNX
route of an .onnx model runs without it."""

import json
import os
import pkgutil
import shutil
import subprocess
import sys

import pytest

import engine
from tests.conftest import DEMO, ROOT
from tests.test_cli_errors import demo_config, write
from tests.tiny_models import tiny_onnx


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    return set(proc.stdout.split())


def test_engine_never_imports_textual():
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.") if not m.name.endswith("__main__")]
    loaded = imported_after("\n".join(f"import {m}" for m in modules))
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_cli_and_config_start_without_tensorflow():
    loaded = imported_after(
        "import engine.cli, engine.config.schema, engine.run.preflight, engine.models.info, engine.footprint"
    )
    assert not loaded & {"tensorflow", "tf_keras", "keras", "onnxruntime", "textual"}


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (dev extra)")
def test_import_linter_contracts():
    proc = subprocess.run(
        ["lint-imports"], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_onnx_route_of_an_onnx_model_runs_without_tensorflow(tmp_path):
    """Quantize, evaluate and estimate an .onnx model with the ONNX quantizer: TensorFlow is never imported."""
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
    loaded = imported_after(f"from engine.cli import main\nassert main({args!r}) == 0")
    assert {"onnxruntime", "engine.evaluation.accuracy"} <= loaded
    assert not loaded & {"tensorflow", "tf_keras", "keras", "tf2onnx"}
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert summary["status"] == "ok" and summary["accuracy"]["agreement"] is not None and summary["footprint"]
