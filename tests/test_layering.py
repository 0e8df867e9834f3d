"""Layering: the engine never imports Textual; the CLI starts without TensorFlow for quick commands."""

import os
import pkgutil
import shutil
import subprocess
import sys

import pytest

import engine
from tests.conftest import ROOT


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
