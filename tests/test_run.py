"""`stquant run` end to end on the bundled demo: every mode, the JSON-lines protocol, interrupts."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.cli import main
from engine.run.summary import RunSummary
from tests.conftest import DEMO
from tests.interrupts import interrupt_in_process
from tests.test_cli_errors import demo_config, run_captured, write


def run_ok(capsys, config_path, *extra) -> tuple[dict, str]:
    code = main(["run", str(config_path), "--progress", "plain", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "ok" and summary["schema_version"] == 1
    assert RunSummary.model_validate(summary).model_dump(mode="json") == summary  # every field is the schema's
    return summary, out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[dict, str, Path]:
    """One real `stquant run` of the demo config (quantization, TFLite, plain progress) read by the tests below:
    its summary, its stdout and the folder of its config (its MLflow store is `mlruns` there)."""
    tmp_path = tmp_path_factory.mktemp("demo_run")
    argv = ["run", write(tmp_path, demo_config(tmp_path)), "--progress", "plain"]
    with pytest.MonkeyPatch.context() as patch:  # the per-layer report takes the images the statistics pass read
        patch.setattr("engine.evaluation.layer_report.first_images", _decoded_again)
        code, out, err = run_captured(argv, tmp_path / "xdg_cache")  # an empty statistics cache, never the user's
    assert code == 0, err
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "run_summary.json").read_text())
    assert summary["status"] == "ok" and summary["schema_version"] == 1
    assert RunSummary.model_validate(summary).model_dump(mode="json") == summary  # every field is the schema's
    return summary, out, tmp_path


def _decoded_again(*args, **kwargs):
    raise AssertionError("the per-layer report decoded its calibration images again")


def tflite_ops(path) -> list[tuple[str, str]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    return [(op["op_name"], str(details[op["outputs"][0]]["dtype"].__name__)) for op in interpreter._get_ops_details()]


def test_quantization_tflite(demo_run):
    summary, out, _ = demo_run
    model = Path(summary["quantized_model"])
    assert model.name == "quantized_model.tflite" and model.parent.name == "quantized_models"
    assert summary["calibration"] == {
        "source": "dataset.quantization_path",
        "images": 120,
        "skipped": 0,
        "statistics": "computed",
        "quantized_model": "converted",
    }
    assert {"prepare", "calibration"} <= set(summary["timings"])
    ops = tflite_ops(model)
    assert ops[0][0] == "QUANTIZE" and ops[-1][0] == "DEQUANTIZE"
    assert all(dtype == "int8" for _, dtype in ops[1:-1]), ops
    assert summary["footprint"]["weights_flash_kib"] > 0 and summary["optimization"] is None
    assert summary["layer_errors"], summary["warnings"]
    worst = summary["layer_errors"][0]
    assert set(worst) == {"layer", "op", "sqnr_db"} and worst["op"] in (
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
    )
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "config.yaml").exists() and "calibration" in (run_dir / "stquant.log").read_text()
    assert not list(run_dir.rglob("*.part"))
    assert out.strip().splitlines()[-1] == str(run_dir)


def test_jsonl_protocol(tmp_path, capsys):
    assert main(["run", write(tmp_path, demo_config(tmp_path)), "--progress", "jsonl"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    events = [json.loads(line) for line in lines[:-1]]
    assert Path(lines[-1]).is_dir()
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "result" and events[-1]["summary"]["status"] == "ok"
    assert events[-1]["summary"] == json.loads(Path(lines[-1], "run_summary.json").read_text())
    assert {"name": "calibration", "event": "stage"} in events
    progress = [e for e in events if e["event"] == "progress" and e["stage"] == "calibration"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 120
    assert any(e["event"] == "log" and "non-image" in e["message"] for e in events)


def test_chain_eqeb(tmp_path, capsys):
    config = demo_config(
        tmp_path,
        operation_mode="chain_eqeb",
        dataset__test_path=str(DEMO / "digits"),
        benchmarking={"board": "NUCLEO-F401RE"},
    )
    summary, out = run_ok(capsys, write(tmp_path, config))
    accuracy = summary["accuracy"]
    assert accuracy["float"] > 90 and abs(accuracy["quantized"] - accuracy["float"]) < 3
    assert accuracy["agreement"] > 95 and accuracy["images"] == 300
    assert set(accuracy["per_class"]["quantized"]) == {f"digit_{i}" for i in range(10)}
    assert "LiteRT" in accuracy["runtime"]["quantized"]
    footprint = summary["footprint"]
    assert 0 < footprint["weights_flash_kib"] < footprint["float_weights_kib"]
    assert footprint["board_fit"]["weights_fit"] is True
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "quantized_model_confusion_matrix_test_set.png").exists()
    assert "top-1 accuracy %" in out and "weights flash KiB" in out


def test_onnx_quantizer(tmp_path, capsys):
    config = demo_config(tmp_path, quantization__quantizer="Onnx_quantizer", quantization__granularity="per_tensor")
    summary, _ = run_ok(capsys, write(tmp_path, config))
    model = Path(summary["quantized_model"])
    assert model.name == "converted_model_quant_qdq_pt.onnx"
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert shape[1:] == [3, 32, 32]
    assert session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_per_tensor_with_optimize(tmp_path, capsys):
    config = demo_config(tmp_path, quantization__granularity="per_tensor", quantization__optimize=True)
    summary, out = run_ok(capsys, write(tmp_path, config))
    assert summary["optimization"]["batchnorms_folded"] and summary["optimization"]["pairs_equalized"]
    assert "worst layers (SQNR dB)" in out


def test_random_calibration(tmp_path, capsys):
    config = demo_config(tmp_path)
    del config["dataset"]
    summary, _ = run_ok(capsys, write(tmp_path, config))
    assert summary["calibration"]["source"] == "random" and summary["calibration"]["images"] > 0


def test_evaluation_of_integer_io_tflite(tmp_path, capsys):
    first, _ = run_ok(capsys, write(tmp_path, demo_config(tmp_path, quantization__quantization_output_type="int8")))
    config = demo_config(
        tmp_path,
        operation_mode="evaluation",
        general__model_path=first["quantized_model"],
        dataset__test_path=str(DEMO / "digits"),
    )
    summary, _ = run_ok(capsys, write(tmp_path, config, "eval.yaml"))
    assert summary["accuracy"]["quantized"] > 90


def test_chain_eqe_and_chain_qb(tmp_path, capsys):
    eqe = demo_config(tmp_path, operation_mode="chain_eqe", dataset__test_path=str(DEMO / "digits"))
    summary, out = run_ok(capsys, write(tmp_path, eqe, "eqe.yaml"))
    assert summary["accuracy"]["agreement"] > 95 and "footprint" in summary
    assert "top-1 agreement %" in out
    # the .h5 is loaded once; the float model runs on the float graph the converter calibrated
    assert list(summary["timings"]).count("load_h5_model") == 1 and summary["timings"]["float_model"] < 1
    assert summary["accuracy"]["runtime"]["float"].endswith("(as converted for quantization)")
    # ...which is the same float model as a separate evaluation of the .h5 (same figures)
    alone = demo_config(tmp_path, operation_mode="evaluation", dataset__test_path=str(DEMO / "digits"))
    evaluated, _ = run_ok(capsys, write(tmp_path, alone, "eval.yaml"))
    assert evaluated["accuracy"]["float"] == summary["accuracy"]["float"]
    assert evaluated["accuracy"]["per_class"]["float"] == summary["accuracy"]["per_class"]["float"]
    qb = demo_config(tmp_path, operation_mode="chain_qb", benchmarking={"board": "STM32H747I-DISCO"})
    summary, out = run_ok(capsys, write(tmp_path, qb, "qb.yaml"))
    assert summary["accuracy"] is None and summary["footprint"]["board_fit"]["board"] == "STM32H747I-DISCO"
    fit = summary["footprint"]["board_fit"]
    assert fit["verdict"] == "fits"  # the demo is tiny: even the no-overlap upper bound fits
    assert f"STM32H747I-DISCO: {fit['verdict']}; weights fit" in out


def test_benchmarking_mode_on_our_output(tmp_path, capsys, demo_run):
    first = demo_run[0]
    config = {
        "operation_mode": "benchmarking",
        "general": {"model_path": first["quantized_model"]},
        "benchmarking": {"board": "NUCLEO-G474RE"},
        "mlflow": {"uri": str(tmp_path / "mlruns")},
        "hydra": {"run": {"dir": str(tmp_path / "bench")}},
    }
    summary, _ = run_ok(capsys, write(tmp_path, config, "bench.yaml"))
    board_specific = {key: summary["footprint"][key] for key in ("board_fit", "estimated_inference_ms")}
    assert summary["footprint"] == {**first["footprint"], **board_specific}
    assert summary["footprint"]["board_fit"]["weights_fit"] is True
    assert board_specific["estimated_inference_ms"] == board_specific["board_fit"]["estimated_inference_ms"] > 0


def test_footprint_of_a_keras_model_is_the_float_footprint_of_the_run(capsys, demo_run):
    quantized = demo_run[0]
    assert main(["footprint", str(DEMO / "digits_cnn.h5"), "--json"]) == 0
    footprint = json.loads(capsys.readouterr().out)
    assert (
        footprint["weights_flash_kib"] == footprint["float_weights_kib"] == quantized["footprint"]["float_weights_kib"]
    )
    assert footprint["activation_ram_kib"] == quantized["footprint"]["float_activation_ram_kib"]
    assert footprint["params"] == quantized["footprint"]["params"]


def test_benchmarking_mode(tmp_path, capsys, flowers_st_tflite):
    config = {
        "operation_mode": "benchmarking",
        "general": {"model_path": str(flowers_st_tflite)},
        "benchmarking": {"board": "STM32H747I-DISCO"},
        "mlflow": {"uri": str(tmp_path / "mlruns")},
        "hydra": {"run": {"dir": str(tmp_path / "run")}},
    }
    summary, _ = run_ok(capsys, write(tmp_path, config))
    assert abs(summary["footprint"]["weights_flash_kib"] - 406.86) / 406.86 < 0.01


def test_reference_command_form(tmp_path, capsys):
    write(tmp_path, demo_config(tmp_path), "user_config.yaml")
    summary, _ = run_ok(
        capsys,
        "quantization.granularity=per_tensor",
        "--config-path",
        str(tmp_path),
        "--config-name",
        "user_config.yaml",
    )
    assert (
        yaml.safe_load(Path(summary["run_dir"], "config.yaml").read_text())["quantization"]["granularity"]
        == "per_tensor"
    )


def test_mlflow_logging(demo_run):
    pytest.importorskip("mlflow", reason="mlflow is an optional extra")
    assert list((demo_run[2] / "mlruns").rglob("meta.yaml"))  # the demo config's quantizer: TFlite_converter


def test_inspect_every_format(tmp_path, capsys, flowers_onnx):
    for model in [DEMO / "digits_cnn.h5", flowers_onnx]:
        assert main(["inspect", str(model), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["output_width"] in (5, 10) and info["quantized"] is False
    assert info["layout"] == "NCHW" and info["height"] == 128


def _calibrating(line: str) -> bool:
    """A progress line of the calibration stage."""
    return '"progress"' in line and '"calibration"' in line


def test_interrupt_leaves_no_partial_model(tmp_path):
    """SIGINT during calibration: exit 130, summary `interrupted`, an earlier model left untouched."""
    run_dir = tmp_path / "run"
    earlier = run_dir / "quantized_models" / "quantized_model.tflite"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"the user's earlier model")
    config = write(tmp_path, demo_config(tmp_path, dataset__quantization_split=1.0))
    argv = ["run", config, "--progress", "jsonl", "--output-dir", run_dir]
    code, out, err = interrupt_in_process(argv, _calibrating, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    assert '"exit_code": 130' in out
    assert earlier.read_bytes() == b"the user's earlier model"
    assert not list(run_dir.rglob("*.part"))
    assert json.loads((run_dir / "run_summary.json").read_text())["status"] == "interrupted"
