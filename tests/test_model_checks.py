"""Models the checks must refuse before a run (issue 19): odd inputs, external data, unreadable files, one layout
rule, and a warning for a 4-D classifier output. Each case asserts the exit code and the one line that names the
model, the input and the dimension."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto

from engine.cli import main
from engine.evaluation.predictors import OnnxPredictor
from engine.models.info import describe_model, guess_layout
from tests.conftest import ROOT
from tests.odd_models import keras_h5, onnx_classifier

ONNX_SAMPLE = ROOT / "sample_configs" / "quantization_onnx_config.yaml"
KERAS_SAMPLE = ROOT / "sample_configs" / "quantization_config.yaml"


def stquant(*args: str) -> tuple[int, list[str], str]:
    """(exit code, stderr lines, stdout) of `stquant ARGS` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue().splitlines(), out.getvalue()


def refused(code: int, lines: list[str], expected_code: int, message: str) -> None:
    assert code == expected_code, lines
    assert lines == [f"stquant: {message}"], lines


ODD_ONNX = [
    (
        ["N", 3, "H", "W"],
        {},
        "input 'x' height is not fixed (dim 2 is 'H'); an image classifier needs a fixed HxW and channel count",
    ),
    (["N", 3, 32, None], {}, "input 'x' width is not fixed (dim 3 is '?')"),
    (["N", 3, 0, 32], {}, "input 'x' height is 0 (dim 2); an image classifier needs a positive size"),
    (["N", 3, 32, -1], {}, "input 'x' width is -1 (dim 3); an image classifier needs a positive size"),
    ([1, 3, 32, 32], {"extra_inputs": 1}, "2 inputs ('x', 'x2'); an image classifier needs exactly one image input"),
    (
        [1, 3, 32, 32],
        {"elem_type": TensorProto.UINT8},
        "input 'x' is uint8; stquant feeds ONNX models float32 images (export the model with a float32 input)",
    ),
    (
        [1, 3, 100000, 100000],
        {},
        "input 'x' is 100000x100000x3 (30000000000 values), above the 16777216 values "
        "(16 MiB at int8) any STM32 could hold",
    ),
    (["N", 3, 32], {}, "input 'x' has shape [None, 3, 32]; an image classifier needs a 4-D input"),
]


def own_mlflow(tmp_path) -> list[str]:
    """A run of a sample config logs to MLflow under tmp_path, not into the checkout's experiments_outputs."""
    return [f"mlflow.uri={tmp_path / 'mlruns'}"]


@pytest.mark.parametrize(("dims", "options", "message"), ODD_ONNX)
def test_odd_onnx_inputs_are_refused_by_validate_footprint_and_run(tmp_path, dims, options, message):
    model = onnx_classifier(tmp_path / "model.onnx", dims, **options)
    for command in (
        ["validate", str(ONNX_SAMPLE)],
        ["footprint", str(model)],
        ["run", str(ONNX_SAMPLE), "--output-dir", str(tmp_path / "run"), "--progress", "none", *own_mlflow(tmp_path)],
    ):
        args = [*command, f"general.model_path={model}"] if command[0] != "footprint" else command
        code, lines, _ = stquant(*args)
        assert code == 2, (command, lines)
        assert lines[-1].startswith(f"stquant: model.onnx: {message}"), (command, lines)
        assert not any("Traceback" in line or "engine failure" in line for line in lines), lines
    code, lines, out = stquant("inspect", str(model), "--json")  # inspect still describes it
    assert code == 0 and json.loads(out)["input_name"] == "x", lines


def test_keras_input_without_fixed_size_is_refused(tmp_path):
    import tf_keras

    inputs = tf_keras.Input((None, None, 3), name="image")
    outputs = tf_keras.layers.Dense(10)(tf_keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path / "free.h5"
    tf_keras.Model(inputs, outputs).save(path)
    code, lines, _ = stquant("validate", str(KERAS_SAMPLE), f"general.model_path={path}")
    refused(
        code,
        lines,
        2,
        "free.h5: input 'image' height is not fixed (dim 1 is 'None'); an image classifier "
        "needs a fixed HxW and channel count",
    )
    code, lines, _ = stquant("footprint", str(path))
    refused(
        code,
        lines,
        2,
        "free.h5: input 'image' height is not fixed (dim 1 is 'None'); an image classifier "
        "needs a fixed HxW and channel count",
    )


@pytest.mark.parametrize(
    ("shape", "inputs", "message"),
    [
        ([None, 0, 32, 3], 1, "input 'input_1' height is 0 (dim 1)"),
        ([None, 32, -1, 3], 1, "input 'input_1' width is -1 (dim 2)"),
        ([None, 32, 32, 3], 2, "2 inputs ('input_1', 'input_2')"),
        ([None, 100000, 100000, 3], 1, "input 'input_1' is 100000x100000x3 (30000000000 values)"),
    ],
)
def test_odd_keras_inputs_are_refused(tmp_path, shape, inputs, message):
    path = keras_h5(tmp_path / "odd.h5", shape, inputs=inputs)
    code, lines, _ = stquant("validate", str(KERAS_SAMPLE), f"general.model_path={path}")
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"stquant: odd.h5: {message}"), lines


def _external_model(folder: Path) -> Path:
    model = onnx.load(str(onnx_classifier(folder / "model.onnx", [1, 3, 32, 32])))
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    return folder / "model.onnx"


def test_onnx_external_data_missing_or_outside_the_folder(tmp_path):
    path = _external_model(tmp_path)
    assert stquant("validate", str(ONNX_SAMPLE), f"general.model_path={path}")[0] == 0
    (tmp_path / "weights.bin").rename(tmp_path / "elsewhere.bin")
    code, lines, _ = stquant("validate", str(ONNX_SAMPLE), f"general.model_path={path}")
    refused(code, lines, 3, f"{path}: external data file not found: {tmp_path / 'weights.bin'} (tensor 'fw')")
    code, lines, _ = stquant("footprint", str(path))
    assert code == 3 and "external data file not found" in lines[0] and len(lines) == 1, lines
    for location in ("../weights.bin", "/etc/passwd"):
        model = onnx.load(str(path), load_external_data=False)
        for entry in (e for tensor in model.graph.initializer for e in tensor.external_data):
            if entry.key == "location":
                entry.value = location
        path.write_bytes(model.SerializeToString())
        code, lines, _ = stquant("validate", str(ONNX_SAMPLE), f"general.model_path={path}")
        refused(
            code,
            lines,
            2,
            f"{path}: tensor 'fw' keeps its data in {location!r}, outside the model's folder; "
            "external data must sit beside the model",
        )


# `main(argv)` for each argv of the JSON list argv[1]: the exit code and stderr of each, as one JSON line.
EACH_COMMAND = """
import contextlib, io, json, sys
from engine.cli import main
outcomes = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        outcomes.append([main(argv), err.getvalue()])
print(json.dumps(outcomes))
"""


def test_unreadable_model_file_is_permission_denied_for_every_format(tmp_path):
    """Root reads mode-000 files: the engine runs as root without the capabilities that bypass permissions."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    prefix = (
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"] if os.geteuid() == 0 else []
    )
    paths = []
    for name in ("model.h5", "model.hdf5", "model.keras", "model.onnx", "model.tflite"):
        path = tmp_path / name
        path.write_bytes(b"not read")
        path.chmod(0)
        paths.append(path)
    cases = [[command, str(path)] for path in paths for command in ("inspect", "footprint")]
    done = subprocess.run(  # one process without those capabilities runs every case
        [*prefix, sys.executable, "-c", EACH_COMMAND, json.dumps(cases)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert outcomes == [[3, f"stquant: permission denied: {path}\n"] for _, path in cases], cases


@pytest.mark.parametrize(
    ("dims", "layout"),
    [
        ([None, 2, 32, 32], "NCHW"),
        ([None, 3, 3, 3], "NCHW"),
        ([1, 3, 1, 1], "NCHW"),
        ([None, 3, 32, 32], "NCHW"),
        ([None, 32, 32, 3], "NHWC"),
        ([None, 32, 32, 1], "NHWC"),
        ([None, 4, 4, 4], "NCHW"),
    ],
)
def test_one_layout_rule_for_describe_predictor_and_quantizer(tmp_path, dims, layout):
    assert guess_layout(dims, "onnx") == layout
    assert guess_layout(dims, "tflite") == guess_layout(dims, "h5") == "NHWC"
    path = onnx_classifier(tmp_path / "m.onnx", ["N" if d is None else d for d in dims])
    assert describe_model(path).layout == layout
    assert OnnxPredictor(path).channels_first == (layout == "NCHW")


def test_4d_onnx_output_is_a_prepare_warning_in_the_run_summary(tmp_path):
    path = onnx_classifier(tmp_path / "model.onnx", [1, 3, 32, 32], output_dims=["N", 10, 1, 1])
    warning = (
        "model.onnx: output 'y' has shape [None, 10, 1, 1], not (N, classes); its values are read as "
        "flattened class scores"
    )
    code, lines, _ = stquant("validate", str(ONNX_SAMPLE), f"general.model_path={path}")
    assert code == 0 and f"stquant: warning: {warning}" in lines, lines
    run_dir = tmp_path / "run"
    code, lines, _ = stquant(
        "run",
        str(ONNX_SAMPLE),
        f"general.model_path={path}",
        "--output-dir",
        str(run_dir),
        "--progress",
        "none",
        *own_mlflow(tmp_path),
    )
    assert code == 0, lines
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert {"stage": "prepare", "message": warning} in [
        {k: w[k] for k in ("stage", "message")} for w in summary["warnings"]
    ]
