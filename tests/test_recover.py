"""`stquant recover` and `quantization.float_layers` on the real tutorial model (per-tensor, no optimize: int8 loses
about half its agreement), checked against an independent evaluation of the saved models."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.cli import main
from engine.run.recovery import Recovery
from engine.run.summary import RunSummary
from tests.conftest import _asset
from tests.test_cli_errors import write
from tests.test_flowers_acceptance import photo_predictions, tutorial_config

pytestmark = pytest.mark.slow
H5 = ("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft.h5")
TARGET = 89.0  # agreement the first float layer reaches, not the config as given


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    """One real recovery (per-tensor TFLite), then `stquant run` of the config.yaml it wrote."""
    model, photos = _asset(*H5), _asset("datasets", "flower_photos")
    tmp = tmp_path_factory.mktemp("recover")
    config = tutorial_config(tmp, model, photos, granularity="per_tensor")
    config["operation_mode"] = "chain_eqe"
    del config["benchmarking"]
    path = write(tmp, config)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        args = ["recover", path, "--target-agreement", str(TARGET), "--progress", "none"]
        code = main([*args, "--output-dir", str(tmp / "rec")])
        rerun = main(
            ["run", str(tmp / "rec" / "config.yaml"), "--progress", "none", "--output-dir", str(tmp / "rerun")]
        )
    return {"tmp": tmp, "code": code, "rerun": rerun, "photos": photos, "model": model}


def _recovery(folder) -> Recovery:
    return Recovery.model_validate_json((folder / "recovery.json").read_text())


def test_recovery_meets_the_target_with_one_float_layer(recovered):
    recovery = _recovery(recovered["tmp"] / "rec")
    assert recovered["code"] == 0 and recovery.status == "met"
    first, best = recovery.steps[0], recovery.steps[recovery.best]
    assert first.remedy == "as configured" and first.agreement < 60 and not first.meets_target
    assert [s.remedy for s in recovery.steps[1:5]] == [
        "calibration_method=entropy",
        "calibration_method=percentile",
        "calibration_method=mse",
        "bias_correction",
    ]
    assert all(not s.kept for s in recovery.steps[1:5])  # none gains a point: the search goes on from step 0
    assert best.meets_target and best.agreement >= TARGET and best.settings["float_layers"] == ["depthwise_conv2d"]
    assert all(
        not s.meets_target for s in recovery.steps[: recovery.best]
    )  # the fewest layers: the first step that meets it
    assert recovery.evaluation_source == "dataset.test_path" and recovery.evaluation_images == 300
    assert recovery.evaluations > len(recovery.steps)  # the ranking evaluated candidates on the subset
    assert "target met" in recovery.outcome and "depthwise_conv2d" in recovery.outcome


def test_recovery_figures_equal_an_independent_evaluation(recovered):
    recovery = _recovery(recovered["tmp"] / "rec")
    summary = RunSummary.model_validate_json((recovered["tmp"] / "rec" / "run_summary.json").read_text())
    best = recovery.steps[recovery.best]
    floats, int8, labels = photo_predictions(recovered["model"], summary.quantized_model, recovered["photos"])
    one_image = 100 / len(labels) + 0.01  # float kernels round a batch and a single image differently: a near-tie
    assert best.accuracy == pytest.approx(100 * np.mean(int8 == labels), abs=one_image)
    assert best.agreement == pytest.approx(100 * np.mean(int8 == floats), abs=one_image)
    assert recovery.float_accuracy == pytest.approx(100 * np.mean(floats == labels), abs=one_image)
    assert summary.accuracy.quantized == best.accuracy and summary.accuracy.agreement == best.agreement
    assert Path(summary.quantized_model).read_bytes() == Path(best.quantized_model).read_bytes()


def test_recovered_model_keeps_its_float_layers_in_float(recovered):
    from engine.quantize.tflite import float_ops_in

    recovery = _recovery(recovered["tmp"] / "rec")
    blob = Path(recovery.steps[recovery.best].quantized_model).read_bytes()
    assert float_ops_in(blob) == ["DEPTHWISE_CONV_2D"]  # the one float layer, nothing else
    assert float_ops_in(blob, ["depthwise_conv2d"]) == []
    footprint = recovery.steps[recovery.best]
    assert footprint.activation_ram_kib > recovery.steps[0].activation_ram_kib  # its float tensors take 4 bytes


def test_config_it_writes_reruns_to_the_same_model(recovered):
    tmp = recovered["tmp"]
    recovery = _recovery(tmp / "rec")
    config = yaml.safe_load((tmp / "rec" / "config.yaml").read_text())
    assert config["quantization"]["float_layers"] == ["depthwise_conv2d"]
    assert recovered["rerun"] == 0
    summary = json.loads((tmp / "rerun" / "run_summary.json").read_text())
    best = recovery.steps[recovery.best]
    assert Path(summary["quantized_model"]).read_bytes() == Path(best.quantized_model).read_bytes()
    assert summary["accuracy"]["quantized"] == best.accuracy and summary["accuracy"]["agreement"] == best.agreement


def test_a_float_layer_step_reuses_the_model_of_its_ranking(recovered):
    """Every quantization the run logs has settings of its own: the float-layer step takes the model the ranking
    made with the same settings (fails on a search that converts it again: one line more)."""
    recovery = _recovery(recovered["tmp"] / "rec")
    log_lines = (recovered["tmp"] / "rec" / "stquant.log").read_text().splitlines()
    quantized = [line for line in log_lines if "engine.quantize.tflite: quantized " in line]
    ranked = [line for line in log_lines if "ranking: " in line and " alone in float changes the score by " in line]
    float_steps = [step for step in recovery.steps if step.remedy.startswith("float: ")]
    assert len(ranked) == 10 and len(float_steps) == 1  # one round of ranking, then the layer that meets the target
    assert len(quantized) == len(recovery.steps) + len(ranked) - len(float_steps)
