"""One evaluation rule for `stquant run`, `stquant compare` and `stquant recover` (test_path, else validation_path, else
the validation split of training_path, else the quantization images not used for calibration), and the warning when
evaluation images are also calibration images."""

import json
import shutil
from pathlib import Path

import pytest

from engine.run.compare import NOT_MEASURED
from tests.conftest import DEMO
from tests.test_cli_errors import demo_config, run_cli, write

DIGITS = DEMO / "digits"
TEST_OVERLAP = (
    "dataset.test_path: 120 of its 300 images are also calibration images (dataset.quantization_path); "
    "accuracy on them is optimistic"
)
SPLIT_OVERLAP = (
    "dataset.validation_split: 60 of the 60 validation images split from dataset.training_path are also "
    "calibration images (dataset.training_path); accuracy on them is optimistic"
)


def some_digits(folder: Path, per_class: int) -> str:
    """A class-folder copy of the demo's first `per_class` images of each digit."""
    for digit in sorted(p for p in DIGITS.iterdir() if p.is_dir()):
        (folder / digit.name).mkdir(parents=True)
        for image in sorted(digit.glob("*.png"))[:per_class]:
            shutil.copy(image, folder / digit.name / image.name)
    return str(folder)


def run_and_compare(capsys, config: str) -> tuple[dict, dict]:
    """The run summary of `stquant run` (chain_eqe) and the comparison of `stquant compare` of one config."""
    code, out, err = run_cli(capsys, "run", config, "--progress", "none")
    assert code == 0, err
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "run_summary.json").read_text())
    code, out, err = run_cli(
        capsys, "compare", config, "--vary", "quantization.granularity=per_channel", "--progress", "none"
    )
    assert code == 0, err
    comparison = json.loads((Path(out.strip().splitlines()[-1]) / "comparison.json").read_text())
    return summary, comparison


def warnings_of(result: dict) -> list[str]:
    return [w["message"] for w in result["warnings"] if w["stage"] == "prepare"]


@pytest.mark.parametrize("case", ["test_path", "validation_path", "training_split", "held_out"])
def test_run_and_compare_evaluate_on_the_same_images(case, tmp_path, capsys):
    dataset = {
        "held_out": {},  # quantization_split 0.4: the other 180 quantization images
        "test_path": {"test_path": str(DIGITS)},  # also the calibration folder: 120 images overlap
        "validation_path": {"validation_path": some_digits(tmp_path / "validation", 4), "test_path": None},
        "training_split": {
            "training_path": str(DIGITS),
            "validation_split": 0.3,
            "quantization_path": None,
            "quantization_split": None,
        },
    }[case]
    config = demo_config(tmp_path, operation_mode="chain_eqe")
    config["dataset"].update(dataset)
    summary, comparison = run_and_compare(capsys, write(tmp_path, config))
    accuracy = summary["accuracy"]
    expected = {
        "test_path": ("test_set", "dataset.test_path", 300),
        "validation_path": ("validation_set", "dataset.validation_path", 40),
        "training_split": ("validation_set", "dataset.validation_split", 90),
        "held_out": ("held_out_quantization_images", "dataset.quantization_split", 180),
    }[case]
    assert (accuracy["set"], accuracy["images"]) == (expected[0], expected[2])
    assert (comparison["evaluation_set"], comparison["evaluation_source"], comparison["evaluation_images"]) == expected
    assert comparison["float_accuracy"] == accuracy["float"]
    assert comparison["variants"][0]["accuracy"] == accuracy["quantized"]
    assert comparison["variants"][0]["agreement"] == accuracy["agreement"]
    overlap = {
        "test_path": [TEST_OVERLAP],
        "validation_path": [],
        "training_split": [SPLIT_OVERLAP.replace("60 of the 60", "90 of the 90")],
        "held_out": [],
    }[case]
    assert [w for w in warnings_of(summary) if "also calibration images" in w] == overlap
    assert [w for w in warnings_of(comparison) if "also calibration images" in w] == overlap


def test_compare_of_a_quantization_config_evaluates_on_its_test_path(tmp_path, capsys):
    """compare reads test_path even when the config's own mode (quantization) does not: no 'not read' warning."""
    config = write(tmp_path, demo_config(tmp_path, dataset__test_path=some_digits(tmp_path / "test", 3)))
    code, out, err = run_cli(
        capsys, "compare", config, "--vary", "quantization.granularity=per_channel", "--progress", "none"
    )
    assert code == 0, err
    comparison = json.loads((Path(out.strip().splitlines()[-1]) / "comparison.json").read_text())
    assert (comparison["evaluation_set"], comparison["evaluation_images"]) == ("test_set", 30)
    assert not [w for w in warnings_of(comparison) if "test_path" in w]


def test_without_an_evaluation_folder_compare_measures_on_the_images_that_do_not_calibrate(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path, dataset__quantization_split=0.4))
    code, out, err = run_cli(
        capsys, "compare", config, "--vary", "quantization.granularity=per_channel,per_tensor", "--progress", "none"
    )
    assert code == 0, err
    comparison = json.loads((Path(out.strip().splitlines()[-1]) / "comparison.json").read_text())
    assert (comparison["evaluation_set"], comparison["evaluation_source"]) == (
        "held_out_quantization_images",
        "dataset.quantization_split",
    )
    assert (comparison["calibration_images"], comparison["evaluation_images"]) == (120, 180)
    assert all(v["agreement"] is not None for v in comparison["variants"])
    assert not [w for w in warnings_of(comparison) if "also calibration images" in w]


def test_run_of_a_recovered_config_gives_the_figures_of_its_recovery(tmp_path, capsys):
    """No evaluation folder: recover measures on the quantization images that do not calibrate, and so does
    `stquant run` of the config it writes (with float_layers), to the same figures."""
    config = demo_config(tmp_path, operation_mode="chain_eqe", quantization__float_layers=["depthwise_conv2d_1"])
    code, out, err = run_cli(
        capsys, "recover", write(tmp_path, config), "--target-agreement", "1", "--progress", "none"
    )
    assert code == 0, err
    recovery = json.loads((Path(out.strip().splitlines()[-1]) / "recovery.json").read_text())
    best = recovery["steps"][recovery["best"]]
    assert (recovery["evaluation_source"], recovery["evaluation_images"]) == ("dataset.quantization_split", 180)
    assert best["settings"]["float_layers"] == ["depthwise_conv2d_1"]
    rerun = ["run", recovery["run_dir"] + "/config.yaml", "--progress", "none", "--output-dir", str(tmp_path / "re")]
    code, _, err = run_cli(capsys, *rerun)
    assert code == 0, err
    summary = json.loads((tmp_path / "re" / "run_summary.json").read_text())
    assert (summary["accuracy"]["set"], summary["accuracy"]["images"]) == ("held_out_quantization_images", 180)
    assert summary["accuracy"]["float"] == recovery["float_accuracy"]
    assert (summary["accuracy"]["quantized"], summary["accuracy"]["agreement"]) == (best["accuracy"], best["agreement"])
    assert Path(summary["quantized_model"]).read_bytes() == Path(best["quantized_model"]).read_bytes()


def test_an_evaluating_mode_needs_images_that_do_not_calibrate(tmp_path, capsys):
    """chain_eqe with every quantization image calibrating and no evaluation folder: refused at the config."""
    config = demo_config(tmp_path, operation_mode="chain_eqe", dataset__quantization_split=1.0)
    code, _, err = run_cli(capsys, "run", write(tmp_path, config), "--progress", "none")
    assert code == 2 and err.count("\n") == 1, err
    assert "cfg.yaml:4: dataset.test_path: operation_mode chain_eqe needs one of test_path" in err


@pytest.mark.parametrize("split", [1.0])
def test_without_evaluation_images_compare_measures_nothing_and_says_so(split, tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path, dataset__quantization_split=split))
    code, out, err = run_cli(
        capsys, "compare", config, "--vary", "quantization.granularity=per_channel,per_tensor", "--progress", "none"
    )
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    comparison = json.loads((run_dir / "comparison.json").read_text())
    assert (comparison["evaluation_set"], comparison["evaluation_images"], comparison["float_accuracy"]) == (
        None,
        0,
        None,
    )
    assert comparison["calibration_images"] == int(300 * split)
    assert [(v["agreement"], v["accuracy"], v["meets_target"]) for v in comparison["variants"]] == [(None,) * 3] * 2
    assert comparison["recommended"] is None
    assert NOT_MEASURED in warnings_of(comparison)
    assert NOT_MEASURED in out and NOT_MEASURED in (run_dir / "comparison.md").read_text()


def validate_warnings(capsys, config: dict, tmp_path: Path) -> list[str]:
    code, _, err = run_cli(capsys, "validate", write(tmp_path, config))
    assert code == 0, err
    return [line.removeprefix("stquant: warning: ") for line in err.splitlines() if "also calibration images" in line]


def test_validate_flags_a_test_set_that_holds_calibration_images(tmp_path, capsys):
    config = demo_config(tmp_path, operation_mode="chain_eqe", dataset__test_path=str(DIGITS))
    assert validate_warnings(capsys, config, tmp_path) == [TEST_OVERLAP]
    (tmp_path / "linked").symlink_to(DIGITS)  # the same files under another name
    config["dataset"]["test_path"] = str(tmp_path / "linked")
    assert validate_warnings(capsys, config, tmp_path) == [TEST_OVERLAP]
    config["dataset"]["test_path"] = some_digits(tmp_path / "copies", 3)  # copies are other files
    assert validate_warnings(capsys, config, tmp_path) == []
    for copy in (tmp_path / "copies").rglob("*.png"):  # links to the files, with all of them calibrating
        copy.unlink()
        copy.symlink_to(DIGITS / copy.parent.name / copy.name)
    config["dataset"]["quantization_split"] = None
    assert validate_warnings(capsys, config, tmp_path) == [TEST_OVERLAP.replace("120 of its 300", "30 of its 30")]
    config["operation_mode"], config["dataset"]["test_path"] = "evaluation", str(DIGITS)  # nothing calibrates
    del config["quantization"]
    assert validate_warnings(capsys, config, tmp_path) == []


def test_validate_flags_a_validation_split_that_calibrates(tmp_path, capsys):
    """A zoo config: training_path only, every training image calibrates, the validation split among them."""
    config = demo_config(tmp_path, operation_mode="chain_eqe")
    config["dataset"].update(training_path=str(DIGITS), quantization_path=None, quantization_split=None)
    assert validate_warnings(capsys, config, tmp_path) == [SPLIT_OVERLAP]
    config["dataset"].update(quantization_split=0.8)  # the first 240 calibrate, the last 60 are the validation split
    assert validate_warnings(capsys, config, tmp_path) == []
