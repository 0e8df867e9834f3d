"""`stquant validate` on hostile inputs: each ends in its documented exit code with one line on stderr that
names the key or the path, and no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from engine.cli import main
from tests.conftest import DEMO, ROOT

SAMPLE = ROOT / "sample_configs" / "quantization_config.yaml"


def validate(*args: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["validate", *args])
    return code, err.getvalue().splitlines()


def one_line(code: int, lines: list[str], expected_code: int, *fragments: str) -> None:
    assert code == expected_code, lines
    assert len(lines) == 1 and not any("Traceback" in line or "engine failure" in line for line in lines), lines
    for fragment in fragments:
        assert fragment in lines[0], lines


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    for k in range(10):
        (root / f"digit_{k}").mkdir(parents=True)
        Image.new("RGB", (8, 8), (k, 0, 0)).save(root / f"digit_{k}" / "a.png")
    return root


@pytest.mark.parametrize(
    ("override", "code", "fragments"),
    [
        (
            "general.model_path=" + "m" * 5000 + ".h5",
            2,
            ["override 'general.model_path=mmm", "general.model_path: path too long"],
        ),
        ("dataset.quantization_path=" + "d/" * 3000, 2, ["dataset.quantization_path: path too long"]),
        ("general.model_path=a\0b.h5", 2, ["general.model_path: contains a NUL character"]),
        ("general.model_path=~nosuchuser_stquant/m.h5", 2, ["general.model_path: no user named 'nosuchuser_stquant'"]),
        (
            "dataset.seed=-1",
            2,
            ["override 'dataset.seed=-1': dataset.seed: Input should be greater than or equal to 0"],
        ),
        (
            "general.global_seed=4294967296",
            2,
            ["general.global_seed: Input should be less than or equal to 4294967295"],
        ),
        ("general.num_threads_tflite=0", 2, ["general.num_threads_tflite"]),
        ("quantization.target_opset=12", 2, ["quantization.target_opset: Input should be greater than or equal to 13"]),
        ("preprocessing.rescaling.scale=(1e300)**2", 2, ["preprocessing.rescaling.scale: number too large"]),
        ("preprocessing.rescaling.scale=.inf", 2, ["preprocessing.rescaling.scale: Input should be a finite number"]),
        (
            "operation_mode=chain_eq",
            2,
            ["operation_mode: 'chain_eq' is not an operation mode; did you mean chain_eqe?"],
        ),
        (
            "operation_mode=training",
            2,
            ["operation_mode: 'training' is not run by stquant; stquant runs: quantization"],
        ),
        ("dataset.quantization_split=0.001", 2, ["dataset.quantization_split: 0.001 of 300 images leaves no image"]),
    ],
)
def test_bad_values_exit_2_naming_the_key(override, code, fragments):
    one_line(*validate(str(SAMPLE), override), code, *fragments)


def test_opset_beyond_the_converter_exits_2():
    one_line(
        *validate(str(SAMPLE), "quantization.quantizer=Onnx_quantizer", "quantization.target_opset=19"),
        2,
        "quantization.target_opset: 19 is above 18, the highest opset tf2onnx (Keras to ONNX) converts to",
    )
    assert validate(str(SAMPLE), "quantization.quantizer=Onnx_quantizer", "quantization.target_opset=18")[0] == 0


def test_paths_of_the_wrong_kind_exit_3_naming_the_key(tmp_path, data):
    folder_model = tmp_path / "model.h5"
    folder_model.mkdir()
    one_line(
        *validate(str(SAMPLE), f"general.model_path={folder_model}"),
        3,
        f"general.model_path: {folder_model} is a folder; expected a model file",
    )
    one_line(
        *validate(str(SAMPLE), f"dataset.quantization_path={DEMO / 'digits_cnn.h5'}"),
        3,
        "dataset.quantization_path:",
        "digits_cnn.h5 is a file; expected a folder",
    )
    one_line(
        *validate(str(SAMPLE), f"dataset.quantization_path={data / 'digit_0' / 'a.png' / 'x'}"),
        3,
        "dataset.quantization_path: dataset folder not found:",
        "(part of that path is a file)",
    )
    one_line(
        *validate(str(SAMPLE), f"dataset.quantization_path={tmp_path / 'nope'}"),
        3,
        "dataset.quantization_path: dataset folder not found",
    )
    one_line(*validate(str(tmp_path)), 3, f"{tmp_path}: is a folder, not a config file")
    one_line(*validate(str(tmp_path / ("c" * 300))), 3, "cannot read config file (File name too long)")


def test_hostile_config_files_exit_2(tmp_path):
    path = tmp_path / "c.yaml"
    cases = {
        b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n".encode() for i in range(8)
        ): "YAML expands to more than",
        b"general: !!python/object/apply:os.system ['true']\n": "YAML syntax error",
        SAMPLE.read_bytes().replace(b"name: digits", b"name: digits\xff"): "not UTF-8 text (byte 0xff)",
        b"": "the config file is empty",
        b"- a\n": "the config must be a mapping",
    }
    for content, fragment in cases.items():
        path.write_bytes(content)
        one_line(*validate(str(path)), 2, str(path), fragment)


def _cli(args: list, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, capture_output=True, timeout=120, **kwargs
    )


def test_undecodable_argv_bytes_exit_2():
    result = _cli(["validate", str(SAMPLE), b"general.model_path=\xff\xfe.h5"])
    assert result.returncode == 3 and result.stderr.count(b"\n") == 1, result.stderr  # a valid (odd) file name
    assert b"general.model_path: model file not found" in result.stderr
    result = _cli(["validate", str(SAMPLE), b"dataset.seed=\xff"])
    assert result.returncode == 2 and result.stderr.count(b"\n") == 1, result.stderr
    assert b"override 'dataset.seed=\\udcff': dataset.seed:" in result.stderr


# `validate CONFIG` with each TARGET in turn made unreadable (mode 0, then given back): [exit code, stderr lines] each
UNREADABLE_IN_TURN = """
import contextlib, io, json, os, sys
from engine.cli import main

config, *targets = sys.argv[1:]
outcomes = []
for target in targets:
    mode, err = os.stat(target).st_mode, io.StringIO()
    os.chmod(target, 0)
    try:
        with contextlib.redirect_stderr(err):
            outcomes.append([main(["validate", config]), err.getvalue().splitlines()])
    finally:
        os.chmod(target, mode)
print(json.dumps(outcomes))
"""


def test_unreadable_files_exit_3(tmp_path, data):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    model = tmp_path / "model.h5"
    shutil.copy(DEMO / "digits_cnn.h5", model)
    config = yaml.safe_load(SAMPLE.read_text())
    config["general"]["model_path"] = str(model)
    config["dataset"]["quantization_path"] = str(data)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    cases = [
        (model, f"general.model_path: cannot read the model file {model} (Permission denied)"),
        (data / "digit_3", f"dataset.quantization_path: cannot read the folder {data / 'digit_3'} (Permission denied)"),
        (data, f"dataset.quantization_path: cannot read the folder {data} (Permission denied)"),
        (path, f"{path}: cannot read config file (Permission denied)"),
    ]
    prefix = (
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"] if os.geteuid() == 0 else []
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # one process without the permission bypass validates with each target unreadable in turn
        [*prefix, sys.executable, "-c", UNREADABLE_IN_TURN, str(path), *(str(target) for target, _ in cases)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert outcomes == [[3, [f"stquant: {fragment}"]] for _, fragment in cases], outcomes
    assert all(stat.S_IMODE(target.stat().st_mode) for target, _ in cases)  # every mode given back
