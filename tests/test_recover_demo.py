"""`stquant recover` and `quantization.float_layers` on the bundled demo model (fast): the budget, Ctrl-C, the ONNX
route, and the checks made before anything runs."""

import json
import signal
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.run.recovery import Recovery
from tests.interrupts import interrupt_in_process, stage_is
from tests.test_cli_errors import assert_one_error, run_cli, write
from tests.test_recover import _recovery


def test_budget_stops_the_search_and_keeps_the_best(tmp_path, capsys):
    """Calibrated on 20 % of the demo images, no range method nor bias correction makes the demo model agree 100 %,
    one float layer does, and its float tensors need more than 20 KiB: the search stops there, exit 1, the best
    within the budget kept and named."""
    from tests.test_cli_errors import demo_config

    path = write(tmp_path, demo_config(tmp_path, dataset__quantization_split=0.2))
    argv = ["recover", path, "--target-agreement", "100", "--max-ram", "20", "--output-dir", str(tmp_path / "over")]
    code, _, err = run_cli(capsys, *argv, "--progress", "none")
    recovery = _recovery(tmp_path / "over")
    assert code == 1 and recovery.status == "not_met"
    assert err.strip().splitlines() == [f"stquant: {recovery.outcome}"]
    last, best = recovery.steps[-1], recovery.steps[recovery.best]
    assert last.remedy.startswith("float: ") and not last.within_budget and last.activation_ram_kib > 20
    assert best.settings["float_layers"] == [] and best.within_budget and best.activation_ram_kib <= 20
    assert f"--max-ram 20 KiB (needs {last.activation_ram_kib:.2f})" in recovery.outcome
    summary = json.loads((tmp_path / "over" / "run_summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == recovery.outcome
    assert f"best model: {summary['quantized_model']}" in recovery.outcome
    assert Path(summary["quantized_model"]).read_bytes() == Path(best.quantized_model).read_bytes()


def test_unknown_float_layer_is_one_line(tmp_path, capsys):
    from tests.test_cli_errors import demo_config

    path = write(tmp_path, demo_config(tmp_path))
    args = ["run", path, "quantization.float_layers=[conv2d,nope]", "--progress", "none"]
    assert_one_error(capsys, args, 2, "quantization.float_layers: 'nope' is not a layer of digits_cnn.h5 (its layers: ")
    assert not list((tmp_path / "runs").rglob("*.tflite"))


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ([], "one of the arguments --max-drop --target-agreement is required"),
        (["--max-drop", "1", "--target-agreement", "99"], "not allowed with argument"),
        (["--target-agreement", "101"], "--target-agreement 101.0: a percentage from 0 to 100"),
        (["--max-drop", "-1"], "--max-drop -1.0: points from 0 to 100"),
        (["--max-drop", "1", "--max-ram", "0"], "--max-ram 0.0: a positive number"),
        (["--max-drop", "1", "--max-ms", "10"], "--max-ms: needs a board"),
        (["--max-drop", "1", "--board", "NUCLEO-X"], "--board"),
    ],
)
def test_recover_options_are_checked_before_anything_runs(tmp_path, capsys, options, fragment):
    from tests.test_cli_errors import demo_config

    path = write(tmp_path, demo_config(tmp_path))
    assert_one_error(capsys, ["recover", path, *options, "--progress", "none"], 2, fragment)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_layer_listed_twice_is_a_config_error(tmp_path, capsys):
    from tests.test_cli_errors import demo_config

    path = write(tmp_path, demo_config(tmp_path))
    assert_one_error(
        capsys, ["validate", path, "quantization.float_layers=[a,a]"], 2, "layer 'a' listed more than once"
    )


def test_schema_recovery(capsys):
    code, out, _ = run_cli(capsys, "schema", "recovery")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "Recovery" and "steps" in schema["properties"]


def test_interrupted_recovery_writes_its_records_and_exits_130(tmp_path):
    """SIGINT at the second step (the demo model; target 100 % so that the search goes on): exit 130, both records
    written, no model published."""
    from tests.test_cli_errors import demo_config

    run_dir = tmp_path / "rec"
    argv = ["recover", write(tmp_path, demo_config(tmp_path)), "--target-agreement", "100", "--progress", "jsonl"]
    code, out, err = interrupt_in_process([*argv, "--output-dir", run_dir], stage_is("step_1"), signal.SIGINT)
    assert code == 130, err
    assert err.strip().splitlines() == ["stquant: interrupted: no partial model was kept"]
    events = [json.loads(line) for line in out.splitlines()]
    recovery = Recovery.model_validate_json((run_dir / "recovery.json").read_text())
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert [e["event"] for e in events[-3:]] == ["recovery", "result", "error"]
    assert events[-3]["recovery"] == recovery.model_dump(mode="json") and events[-2]["summary"] == summary
    assert recovery.status == "interrupted" and summary["status"] == "interrupted"
    assert summary["failed_stage"] in ("step_1", "evaluate_step_1") and summary["quantized_model"] is None
    assert [s.remedy for s in recovery.steps] == ["as configured"]
    assert not (run_dir / "quantized_models").exists() and not list(run_dir.rglob("*.part"))


def test_onnx_recovery_takes_the_free_remedy_that_meets_the_target(tmp_path, capsys):
    """The demo model per tensor through ONNX Runtime agrees 99.44 % with minmax ranges and 100 % with percentile
    ones: the search stops at that step, and the config it writes re-runs to the same model and accuracy."""
    from tests.test_cli_errors import demo_config

    path = write(tmp_path, demo_config(tmp_path))
    settings = ["quantization.quantizer=Onnx_quantizer", "quantization.granularity=per_tensor"]
    argv = ["recover", path, *settings, "--target-agreement", "100", "--output-dir", str(tmp_path / "rec")]
    code, out, _ = run_cli(capsys, *argv, "--progress", "none")
    recovery = _recovery(tmp_path / "rec")
    best = recovery.steps[recovery.best]
    assert code == 0 and out.strip().splitlines() == [recovery.outcome, str(tmp_path / "rec")]
    assert recovery.steps[0].agreement < 100 and best.remedy == "calibration_method=percentile"
    assert best.settings == {"calibration_method": "percentile", "bias_correction": False, "float_layers": []}
    assert best.index == len(recovery.steps) - 1  # nothing tried after the target is met
    rerun = main(
        ["run", str(tmp_path / "rec" / "config.yaml"), "--progress", "none", "--output-dir", str(tmp_path / "r")]
    )
    summary = json.loads((tmp_path / "r" / "run_summary.json").read_text())
    assert rerun == 0 and Path(summary["quantized_model"]).name == Path(best.quantized_model).name
    assert _initializers(summary["quantized_model"]) == _initializers(best.quantized_model)  # same weights and scales
    given = yaml.safe_load(Path(path).read_text())["operation_mode"]
    # the search evaluated every step: so does the run of the config it wrote, to the same figures
    assert (given, summary["operation_mode"]) == ("quantization", "chain_eqe")
    assert (summary["accuracy"]["quantized"], summary["accuracy"]["agreement"]) == (best.accuracy, best.agreement)


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("quantization", "chain_eqe"),
        ("chain_eqe", "chain_eqe"),
        ("chain_qb", "chain_eqeb"),
        ("chain_eqeb", "chain_eqeb"),
    ],
)
def test_the_config_recover_writes_evaluates_and_keeps_benchmarking(given, written):
    from engine.run.recover import rerun_mode

    assert rerun_mode(given) == written


def _initializers(path) -> list[bytes]:
    """Every constant of an ONNX model (tf2onnx numbers some constant names differently at each conversion)."""
    import onnx
    from onnx import numpy_helper

    return sorted(numpy_helper.to_array(t).tobytes() for t in onnx.load(path).graph.initializer)


def test_onnx_float_layer_keeps_its_node_out_of_quantization(tmp_path, capsys):
    """`quantization.float_layers` with ONNX Runtime: the named layer's Conv reads float weights (no
    DequantizeLinear), every other Conv reads dequantized int8 weights."""
    import onnx

    from engine.models.library_internals import layer_of_node
    from tests.test_cli_errors import demo_config

    path = write(tmp_path, demo_config(tmp_path))
    argv = ["run", path, "quantization.quantizer=Onnx_quantizer", "quantization.float_layers=[conv2d_1]"]
    code, out, _ = run_cli(capsys, *argv, "--progress", "none", "--output-dir", str(tmp_path / "run"))
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert code == 0, out
    graph = onnx.load(summary["quantized_model"]).graph
    produced_by = {output: node.op_type for node in graph.node for output in node.output}
    weights = {
        node.name: produced_by.get(node.input[1], "initializer") for node in graph.node if node.op_type == "Conv"
    }
    float_convs = [name for name, source in weights.items() if source != "DequantizeLinear"]
    assert [layer_of_node(name) for name in float_convs] == ["conv2d_1"]
    assert len(weights) > 1
