"""The ONNX route of a Keras model converts in a child process when the run's process has no TensorFlow:
same model, same errors, the user's trust passed on, and TensorFlow never imported by the run itself."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from engine.common.errors import InputError
from engine.models.files import trust_stored_code
from engine.models.load import load_keras_model
from engine.quantize.keras_onnx import convert_apart
from tests.conftest import ROOT
from tests.test_cli_errors import demo_config, write
from tests.test_keras_lambda import save, tf_keras_model


def stquant_run(config: str, out: str, preload: str = "") -> set[str]:
    """`stquant run --trust-model` in a fresh process (after `preload`); the modules it imported."""
    code = (
        f"{preload}\nimport sys\nfrom engine.cli import main\n"
        f"code = main(['run', {config!r}, '--output-dir', {out!r}, '--progress', 'none', '--no-cache', "
        "'--trust-model'])\n"
        "print(' '.join(sorted(sys.modules)))\nsys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def test_a_run_without_tensorflow_converts_in_a_child_to_the_same_model(tmp_path):
    """A model with a Lambda stquant does not recognise: the child takes the user's trust (--trust-model)."""
    model = save(tf_keras_model(("leaky", lambda t: tf.nn.leaky_relu(t)), classes=10), tmp_path / "leaky.h5")
    config = write(
        tmp_path, demo_config(tmp_path, general__model_path=str(model), quantization__quantizer="Onnx_quantizer")
    )
    apart = stquant_run(config, str(tmp_path / "apart"))
    assert "onnxruntime" in apart and not apart & {"tensorflow", "tf_keras", "keras", "tf2onnx"}
    here = stquant_run(config, str(tmp_path / "here"), preload="import tensorflow")  # converts in its own process
    assert "tf2onnx" in here
    summaries = [json.loads((tmp_path / run / "run_summary.json").read_text()) for run in ("apart", "here")]
    assert [s["keras_loaded_by"] for s in summaries] == [["convert"], ["convert"]]
    models = [Path(s["quantized_model"]).read_bytes() for s in summaries]
    assert models[0] == models[1]
    assert summaries[0]["layer_errors"] == summaries[1]["layer_errors"]


def test_the_child_raises_the_loaders_own_error(tmp_path):
    """Untrusted, the child refuses the model's stored code as the loader here does (with --trust-model it converts
    it: test_a_run_without_tensorflow_converts_in_a_child_to_the_same_model)."""
    model = tf_keras_model(("leaky", lambda t: tf.nn.leaky_relu(t)), classes=10)
    path = save(model, tmp_path / "leaky.h5")
    trust_stored_code(False)
    with pytest.raises(InputError) as here:
        load_keras_model(path)
    with pytest.raises(InputError) as apart:
        convert_apart(path, 17, tmp_path / "untrusted.onnx")
    assert str(apart.value) == str(here.value) and "Lambda layer 'leaky'" in str(apart.value)
    assert not (tmp_path / "untrusted.onnx").exists()


def spawned_children(pid: int) -> list[int]:
    """The children of `pid` started by multiprocessing's spawn (the conversion process)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def running(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie has ended)."""
    alive = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text():
                alive.append(pid)
    return alive


def test_ctrl_c_during_the_conversion_ends_the_run_and_its_child(tmp_path):
    config = write(tmp_path, demo_config(tmp_path, quantization__quantizer="Onnx_quantizer"))
    command = [sys.executable, "-m", "engine", "run", config, "--progress", "none", "--output-dir", str(tmp_path / "r")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, children = time.monotonic() + 120, []
    while not children and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            children = spawned_children(proc.pid)
    assert children, "the conversion never started in a child process"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    deadline = time.monotonic() + 3
    while running(children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(children), [Path(f"/proc/{pid}/status").read_text()[:300] for pid in running(children)]
