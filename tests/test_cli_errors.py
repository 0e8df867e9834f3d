"""Every bad input: a one-line error naming the key or path, the documented exit code, no traceback."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from tests.conftest import DEMO, ROOT
from tests.tiny_models import tiny_onnx

DIGITS = [f"digit_{i}" for i in range(10)]


def demo_config(tmp_path, **changes) -> dict:
    config = {
        "general": {"model_path": str(DEMO / "digits_cnn.h5")},
        "operation_mode": "quantization",
        "dataset": {"class_names": list(DIGITS), "quantization_path": str(DEMO / "digits"), "quantization_split": 0.4},
        "preprocessing": {
            "rescaling": {"scale": "1/127.5", "offset": -1},
            "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
            "color_mode": "rgb",
        },
        "quantization": {
            "quantizer": "TFlite_converter",
            "quantization_type": "PTQ",
            "quantization_input_type": "uint8",
            "quantization_output_type": "float",
        },
        "mlflow": {"uri": str(tmp_path / "mlruns")},
        "hydra": {"run": {"dir": str(tmp_path / "runs" / "${now:%Y_%m_%d_%H_%M_%S}")}},
    }
    for key, value in changes.items():
        node = config
        *parents, last = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def write(tmp_path, config, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False) if isinstance(config, dict) else config)
    return str(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def run_captured(argv: list[str], cache: Path) -> tuple[int, str, str]:
    """`main(argv)` with its own stdout, stderr and statistics cache folder (for module-scoped fixtures, which have no
    capsys or monkeypatch): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        env.setenv("XDG_CACHE_HOME", str(cache))
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_error(capsys, argv, code, *fragments):
    got, _, err = run_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.startswith("stquant: ")]
    assert got == code, err
    assert len(lines) >= 1
    for fragment in fragments:
        assert fragment in err, err


def test_valid_demo_config(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "validate", write(tmp_path, demo_config(tmp_path)))
    assert code == 0 and "ok (operation_mode quantization" in out and "10 classes" in out


def test_yaml_syntax_error(tmp_path, capsys):
    path = write(tmp_path, "general:\n  model_path: [x\noperation_mode: quantization\n")
    assert_one_error(capsys, ["validate", path], 2, "cfg.yaml:3", "YAML syntax error")


def test_unknown_key(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, quantization__granulrity="per_tensor"))
    assert_one_error(capsys, ["validate", path], 2, "quantization.granulrity: unknown key; did you mean granularity?")


def test_wrong_type(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, dataset__seed="abc"))
    assert_one_error(capsys, ["validate", path], 2, "dataset.seed:")


def test_value_outside_allowed_set(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, preprocessing__resizing__interpolation="cubic"))
    assert_one_error(
        capsys,
        ["validate", path],
        2,
        "preprocessing.resizing.interpolation: 'cubic' is not allowed",
        "'bilinear', 'nearest'",
    )


@pytest.mark.parametrize("split", [0, -0.2, 1.5])
def test_bad_quantization_split(tmp_path, capsys, split):
    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_split=split))
    assert_one_error(capsys, ["validate", path], 2, "dataset.quantization_split:")


def test_missing_model_file(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, general__model_path=str(tmp_path / "nope.h5")))
    assert_one_error(capsys, ["validate", path], 3, "general.model_path: model file not found", "nope.h5")


def test_model_file_that_is_not_a_model(tmp_path, capsys):
    fake = tmp_path / "model.h5"
    fake.write_text("this is not a model")
    path = write(tmp_path, demo_config(tmp_path, general__model_path=str(fake)))
    assert_one_error(capsys, ["validate", path], 3, "model.h5")


def test_missing_dataset_folder(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_path=str(tmp_path / "nodata")))
    assert_one_error(capsys, ["validate", path], 3, "dataset.quantization_path: dataset folder not found", "nodata")


def test_dataset_without_class_folders(tmp_path, capsys):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes((DEMO / "digits" / "digit_1").glob("*.png").__next__().read_bytes())
    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_path=str(tmp_path / "flat")))
    assert_one_error(capsys, ["validate", path], 3, "dataset.quantization_path: no class sub-folders")


def test_class_name_without_folder(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, dataset__class_names=[*DIGITS[:9], "digit_X"]))
    assert_one_error(capsys, ["validate", path], 2, "dataset.class_names: no folder for class 'digit_X'")


def test_output_width_differs_from_classes(tmp_path, capsys):
    model = tiny_onnx(tmp_path / "five.onnx", channels=3, classes=5)
    path = write(
        tmp_path, demo_config(tmp_path, general__model_path=str(model), quantization__quantizer="Onnx_quantizer")
    )
    assert_one_error(capsys, ["validate", path], 2, "dataset.class_names: 10 classes", "outputs 5 scores")


@pytest.mark.parametrize(("channels", "color_mode"), [(1, "rgb"), (3, "grayscale")])
def test_color_mode_mismatch(tmp_path, capsys, channels, color_mode):
    model = tiny_onnx(tmp_path / "m.onnx", channels=channels, classes=10)
    path = write(
        tmp_path,
        demo_config(
            tmp_path,
            general__model_path=str(model),
            preprocessing__color_mode=color_mode,
            quantization__quantizer="Onnx_quantizer",
        ),
    )
    assert_one_error(capsys, ["validate", path], 2, f"preprocessing.color_mode: {color_mode}", f"expects {channels}")


def test_split_that_leaves_no_image(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_split=0.001))
    assert_one_error(capsys, ["validate", path], 2, "dataset.quantization_split: 0.001 of 300 images leaves no image")


def test_tflite_converter_on_onnx(tmp_path, capsys):
    model = tiny_onnx(tmp_path / "m.onnx", channels=3, classes=10)
    path = write(tmp_path, demo_config(tmp_path, general__model_path=str(model)))
    assert_one_error(
        capsys, ["validate", path], 2, "quantization.quantizer: TFlite_converter cannot quantize an .onnx model"
    )


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder should go")
    path = write(tmp_path, demo_config(tmp_path))
    assert_one_error(
        capsys,
        ["run", path, "--output-dir", str(blocker / "run"), "--progress", "none"],
        3,
        "--output-dir: cannot write the run folder",
    )
    assert blocker.read_text() == "a file where the run folder should go"


@pytest.mark.parametrize("quantizer", ["TFlite_converter", "Onnx_quantizer"])
def test_calibration_images_that_all_fail_to_decode(tmp_path, capsys, quantizer):
    bad = tmp_path / "bad"
    for name in DIGITS:
        (bad / name).mkdir(parents=True)
        (bad / name / "x.png").write_text("not a PNG")
    config = demo_config(
        tmp_path,
        operation_mode="chain_eqe",
        dataset__quantization_path=str(bad),
        dataset__test_path=str(DEMO / "digits"),
        quantization__quantizer=quantizer,
    )
    run_dir = tmp_path / "run"
    assert_one_error(
        capsys,
        ["run", write(tmp_path, config), "--output-dir", str(run_dir), "--progress", "none"],
        3,
        "dataset.quantization_path: none of the 4 calibration images could be decoded",
    )  # split 0.4 of 10
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "failed" and summary["quantized_model"] is None
    assert summary["accuracy"]["float"] > 90  # the float model was still evaluated
    assert not list(run_dir.rglob("*.tflite")) and not list(run_dir.rglob("*_qdq_*.onnx"))


def test_expression_is_rejected_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = write(
        tmp_path, demo_config(tmp_path, preprocessing__rescaling__scale=f"__import__('os').system('touch {marker}')")
    )
    assert_one_error(
        capsys, ["validate", path], 2, "preprocessing.rescaling.scale: not a number or arithmetic expression"
    )
    assert not marker.exists()


def test_unset_environment_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STQ_UNSET_VAR", raising=False)
    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_path="${STQ_UNSET_VAR}/photos"))
    assert_one_error(
        capsys, ["validate", path], 2, "dataset.quantization_path: environment variable STQ_UNSET_VAR is not set"
    )


def test_missing_config_file(tmp_path, capsys):
    assert_one_error(capsys, ["validate", str(tmp_path / "none.yaml")], 3, "none.yaml: config file not found")


def test_usage_error(capsys):
    assert_one_error(capsys, ["run", "--progress", "loud", "x.yaml"], 2, "usage:")


def test_unsupported_mode(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path, operation_mode="training"))
    assert_one_error(capsys, ["validate", path], 2, "operation_mode: 'training' is not run by stquant")


def test_no_traceback_in_a_real_process(tmp_path):
    path = write(tmp_path, demo_config(tmp_path, general__model_path=str(tmp_path / "nope.h5")))
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", path, "--progress", "jsonl"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"stquant: general.model_path: model file not found: {tmp_path / 'nope.h5'}"
    ]
    assert '"event": "error"' in proc.stdout and '"exit_code": 3' in proc.stdout


def test_options_and_overrides_in_any_order(tmp_path, capsys):
    path = write(tmp_path, demo_config(tmp_path))
    code, out, err = run_cli(capsys, "validate", path, "--debug", "dataset.seed=7")
    assert code == 0 and "ok (operation_mode quantization" in out, err
    code, out, err = run_cli(
        capsys,
        "run",
        path,
        "--output-dir",
        str(tmp_path / "run"),
        "operation_mode=chain_qb",
        "--progress",
        "none",
        "benchmarking.board=NUCLEO-F401RE",
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert summary["operation_mode"] == "chain_qb" and summary["footprint"]["board_fit"]["board"] == "NUCLEO-F401RE"


def test_unknown_board_lists_the_boards(tmp_path, capsys):
    from engine.footprint.boards import BOARDS

    model = tiny_onnx(tmp_path / "m.onnx")
    assert_one_error(
        capsys,
        ["footprint", str(model), "--board", "NUCLEO-X999"],
        2,
        "--board: unknown board 'NUCLEO-X999'; known boards: " + ", ".join(BOARDS),
    )


def test_boards_prints_flash_and_ram(capsys):
    from engine.footprint.boards import BOARDS

    code, out, _ = run_cli(capsys, "boards")
    rows = {line.split()[0]: line.split()[1:] for line in out.strip().splitlines()[1:]}
    assert code == 0 and rows == {
        b.name: [b.mcu, str(b.flash_kib), str(b.ram_kib), b.core, str(b.mhz)] for b in BOARDS.values()
    }


def test_footprint_of_what_it_cannot_measure(tmp_path, capsys):
    assert_one_error(capsys, ["footprint", str(tmp_path / "none.tflite")], 3, "model file not found", "none.tflite")
    other = tmp_path / "weights.pb"
    other.write_bytes(b"\x00")
    assert_one_error(capsys, ["footprint", str(other)], 2, "footprint needs a .tflite, .onnx, .h5 or .keras model")


def test_schema_of_the_run_summary(capsys):
    from engine.run.summary import RunSummary

    code, out, _ = run_cli(capsys, "schema", "run-summary")
    schema = json.loads(out)
    assert code == 0 and schema == RunSummary.model_json_schema()
    assert {"schema_version", "warnings", "failed_stage", "accuracy", "footprint"} <= set(schema["properties"])
    accuracy = schema["$defs"]["Accuracy"]["properties"]
    assert (
        "percent" in accuracy["float"]["description"] and "percentage points" in accuracy["difference"]["description"]
    )


def test_preflight_warnings_are_shown_once(tmp_path, capsys):
    """A dataset with a folder that is not a class and a non-image file (the demo's notes.txt): whatever
    preflight says about it (`Plan.warnings`), validate prints each once and a run keeps it in its summary."""
    from engine.config.schema import load_config
    from engine.run.preflight import prepare

    data = tmp_path / "digits"
    for index in range(10):
        (data / f"digit_{index}").mkdir(parents=True)
        for image in sorted((DEMO / "digits" / f"digit_{index}").glob("*.png"))[:3]:
            (data / f"digit_{index}" / image.name).write_bytes(image.read_bytes())
    (data / "unsorted").mkdir()
    (data / "digit_0" / "notes.txt").write_text("not an image")
    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_path=str(data)))
    warnings = prepare(load_config(path)).warnings
    assert len(warnings) == 2 and "unsorted" in warnings[0] + warnings[1] and "notes.txt" in warnings[0] + warnings[1]
    code, _, err = run_cli(capsys, "validate", path)
    assert code == 0 and [line for line in err.splitlines() if "warning" in line] == [
        f"stquant: warning: {w}" for w in dict.fromkeys(warnings)
    ]
    code, _, _ = run_cli(capsys, "run", path, "--output-dir", str(tmp_path / "run"), "--progress", "none")
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert code == 0 and [w for w in summary["warnings"] if w["stage"] == "prepare"] == [
        {"stage": "prepare", "message": w} for w in dict.fromkeys(warnings)
    ]


def test_schema_of_the_config_carries_the_wizards_help_texts(capsys):
    """`stquant schema config`: the same descriptions the wizard's help line shows (one source)."""
    from stquant_tui.widgets.fields import help_text

    code, out, _ = run_cli(capsys, "schema", "config")
    schema = json.loads(out)
    granularity = schema["$defs"]["Quantization"]["properties"]["granularity"]
    assert code == 0 and granularity["default"] == "per_channel"
    assert help_text("quantization.granularity").startswith(granularity["description"])
