"""A diagnostic never spoils a run, a run never spoils another, an interrupt always ends the same way.

Real runs of the bundled demo; each stage fails through real input where one exists.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.common.errors import Interrupted
from engine.run.events import Reporter
from engine.run.folder import make_unique_run_dir
from engine.run.job import Job
from engine.run.summary import RunSummary
from tests.conftest import DEMO, ROOT
from tests.interrupts import interrupt_in_process, stage_is
from tests.test_cli_errors import demo_config, write
from tests.tiny_models import tiny_onnx


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def summary_of(run_dir: Path) -> dict:
    data = json.loads((run_dir / "run_summary.json").read_text())
    RunSummary.model_validate(data)  # always the documented schema
    return data


def run_warnings(summary: dict) -> list[dict]:
    """The run's warnings after `prepare` (whose one warning on the demo is its stray digit_0/notes.txt)."""
    assert all("notes.txt" in w["message"] for w in summary["warnings"] if w["stage"] == "prepare")
    return [w for w in summary["warnings"] if w["stage"] != "prepare"]


def onnx_with_contrib_op(path: Path) -> Path:
    """tiny_onnx with a com.microsoft Gelu after the Conv: ONNX Runtime runs and quantizes around it, but ONNX
    shape inference knows nothing of it, so the footprint cannot size its output."""
    import onnx
    from onnx import helper

    model = onnx.load(tiny_onnx(path, channels=3, classes=10))
    conv = model.graph.node[0]
    conv.output[0] = "conv_raw"
    model.graph.node.insert(1, helper.make_node("Gelu", ["conv_raw"], ["conv"], domain="com.microsoft"))
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, path)
    return path


def test_footprint_failure_is_a_warning_and_the_model_is_kept(tmp_path, capsys):
    model = onnx_with_contrib_op(tmp_path / "gelu.onnx")
    config = demo_config(
        tmp_path,
        operation_mode="chain_qb",
        general__model_path=str(model),
        quantization__quantizer="Onnx_quantizer",
        quantization__quantization_input_type="float",
    )
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "run", write(tmp_path, config), "--output-dir", run_dir, "--progress", "plain")
    assert code == 0, err
    summary = summary_of(run_dir)
    assert summary["status"] == "ok" and summary["footprint"] is None and summary["failed_stage"] is None
    assert run_warnings(summary) == [{"stage": "footprint", "message": "ONNX tensor 'conv' has no inferred shape"}]
    assert Path(summary["quantized_model"]).stat().st_size > 0 and summary["layer_errors"]
    assert "warning (footprint): ONNX tensor 'conv' has no inferred shape" in out  # the CLI's closing summary
    assert "footprint failed (the run goes on)" in err  # and the live log line


def test_a_confusion_matrix_that_cannot_be_written_is_a_warning(tmp_path, capsys):
    """The PNGs are drawn beside the later stages: a folder where the float model's PNG goes (a real write failure)
    costs that PNG only; the run, its figures and the other PNG are kept."""
    config = demo_config(tmp_path, operation_mode="chain_eqe", dataset__test_path=str(DEMO / "digits"))
    run_dir = tmp_path / "run"
    (run_dir / "float_model_confusion_matrix_test_set.png").mkdir(parents=True)
    code, out, err = run_cli(capsys, "run", write(tmp_path, config), "--output-dir", run_dir, "--progress", "none")
    assert code == 0, err
    summary = summary_of(run_dir)
    assert summary["status"] == "ok" and summary["failed_stage"] is None
    [warning] = [w for w in summary["warnings"] if w["stage"] != "prepare"]  # (the test set is the calibration set)
    assert warning["stage"] == "confusion_matrix" and "float_model_confusion_matrix_test_set.png" in warning["message"]
    assert summary["accuracy"]["float"] is not None and summary["accuracy"]["quantized"] is not None
    assert summary["footprint"]["weights_flash_kib"] > 0
    assert (run_dir / "quantized_model_confusion_matrix_test_set.png").stat().st_size > 0
    assert "warning (confusion_matrix): " in out


def test_layer_report_and_mlflow_failures_are_warnings(tmp_path, capsys, monkeypatch):
    """No real model makes the per-layer report fail (every one tried was handled), so LiteRT's interpreter
    is made to refuse the report's request (all tensors preserved) - a monkeypatch of the library call. The same run's
    MLflow store folder is a file: its logging fails too."""
    pytest.importorskip("mlflow", reason="mlflow is an optional extra")
    from ai_edge_litert import interpreter

    original = interpreter.Interpreter.__init__

    def refuse(self, *args, **kwargs):
        if kwargs.get("experimental_preserve_all_tensors"):
            raise RuntimeError("Failed to allocate the preserved tensors\nsecond line")
        original(self, *args, **kwargs)

    monkeypatch.setattr(interpreter.Interpreter, "__init__", refuse)
    blocker = tmp_path / "mlruns"
    blocker.write_text("a file where the MLflow store folder should be")
    run_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "run", write(tmp_path, demo_config(tmp_path)), "--output-dir", run_dir, "--progress", "none"
    )
    assert code == 0, err
    summary = summary_of(run_dir)
    assert summary["status"] == "ok" and summary["layer_errors"] is None
    layer_report, mlflow = run_warnings(summary)
    assert layer_report == {"stage": "layer_errors", "message": "Failed to allocate the preserved tensors"}
    assert summary["footprint"]["weights_flash_kib"] > 0  # later stages still ran
    assert Path(summary["quantized_model"]).is_file()
    assert mlflow["stage"] == "mlflow" and mlflow["message"].startswith(f"MLflow logging to {blocker} failed: ")
    assert "warning (mlflow): MLflow logging to" in out
    assert blocker.read_text() == "a file where the MLflow store folder should be"


def test_mlflow_http_uri_is_passed_unchanged(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is an optional extra")
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{port}"
    run_dir = tmp_path / "run"
    start = time.monotonic()
    code, _, _ = run_cli(
        capsys,
        "run",
        write(tmp_path, demo_config(tmp_path, mlflow__uri=uri)),
        "--output-dir",
        run_dir,
        "--progress",
        "none",
    )
    assert code == 0 and time.monotonic() - start < 60
    summary = summary_of(run_dir)
    assert run_warnings(summary)[0]["stage"] == "mlflow" and uri in run_warnings(summary)[0]["message"]
    assert summary["timings"]["mlflow"] < 15
    assert not (tmp_path / "http:").exists()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["mlflow"]["uri"] == uri


def test_evaluation_failure_fails_the_run_but_keeps_the_model(tmp_path, capsys):
    """chain_eqe whose test images are all undecodable: the .h5 is quantized first (its float model is evaluated
    on the converter's graph afterwards), then the evaluation has nothing to evaluate."""
    broken = tmp_path / "broken"
    for index in range(10):
        (broken / f"digit_{index}").mkdir(parents=True)
        (broken / f"digit_{index}" / "x.png").write_text("not a PNG")
    config = demo_config(tmp_path, operation_mode="chain_eqe", dataset__test_path=str(broken))
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", write(tmp_path, config), "--output-dir", run_dir, "--progress", "none")
    assert code == 1, err
    assert [line for line in err.splitlines() if line.startswith("stquant: ")] == [
        "stquant: cannot evaluate 0 images with 0 labels"
    ]
    summary = summary_of(run_dir)
    assert summary["status"] == "failed" and summary["failed_stage"] == "evaluate_float"
    assert summary["error"] == "cannot evaluate 0 images with 0 labels"
    model = Path(summary["quantized_model"])
    assert model == run_dir / "quantized_models" / "quantized_model.tflite"
    from ai_edge_litert.interpreter import Interpreter

    Interpreter(model_path=str(model)).allocate_tensors()  # whole and loadable


def test_runs_started_together_get_their_own_folders(tmp_path, capsys):
    target = tmp_path / "runs" / "2026_01_01_00_00_00"
    made: list[Path] = []
    threads = [
        threading.Thread(target=lambda: made.append(make_unique_run_dir(target, "hydra.run.dir"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in made) == sorted([target.name] + [f"{target.name}_{i}" for i in range(1, 8)])
    # two real runs of a config whose hydra.run.dir has no ${now}: the second gets its own folder
    config = write(tmp_path, demo_config(tmp_path, hydra__run__dir=str(tmp_path / "same")))
    firsts = [Path(run_cli(capsys, "run", config, "--progress", "none")[1].splitlines()[-1]) for _ in range(2)]
    assert firsts == [tmp_path / "same", tmp_path / "same_1"]
    assert summary_of(firsts[0])["run_dir"] == str(firsts[0])
    output_dir_holding_a_run_needs_overwrite(capsys, config, firsts[1])


def output_dir_holding_a_run_needs_overwrite(capsys, config: Path, run_dir: Path) -> None:
    """`--output-dir run_dir`, where a run of `config` is: refused, the run untouched; with --overwrite: run again."""
    before = (run_dir / "run_summary.json").read_text()
    code, _, err = run_cli(capsys, "run", config, "--output-dir", run_dir, "--progress", "none")
    assert code == 2 and err.strip() == (
        f"stquant: --output-dir: {run_dir} already holds a run (run_summary.json); "
        "choose another folder or add --overwrite"
    )
    assert (run_dir / "run_summary.json").read_text() == before
    assert run_cli(capsys, "run", config, "--output-dir", run_dir, "--overwrite", "--progress", "none")[0] == 0


def _run_until(tmp_path, config: dict, stage: str, number: int, in_process: bool = False):
    """Start a real `stquant run --progress jsonl` (empty statistics cache); send `number` when the `stage` event
    arrives. `in_process`: the run is `main()` in this process (its signal handlers, without importing TensorFlow
    again); else a child process the test signals as a parent would."""
    run_dir = tmp_path / "run"
    argv = ["run", write(tmp_path, config), "--progress", "jsonl", "--output-dir", str(run_dir)]
    if in_process:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
            code, out, err = interrupt_in_process(argv, stage_is(stage), number)
        return code, _stages(out), out, err, run_dir
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "xdg_cache")},
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if stage_is(stage)(line):
            proc.send_signal(number)
            break
    out, err = proc.communicate(timeout=180)
    return proc.returncode, _stages("".join(lines)), out, err, run_dir


def _stages(out: str) -> list[str]:
    """The stages a jsonl output says started."""
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [event["name"] for event in events if event.get("event") == "stage"]


# signal, stage at which it is sent, stages at which it may land (the next starts before the signal arrives)
INTERRUPTS = [
    (signal.SIGINT, "calibration", ("calibration",)),
    (signal.SIGTERM, "layer_errors", ("layer_errors", "footprint")),
    (signal.SIGINT, "evaluate_quantized", ("evaluate_quantized", "layer_errors")),
    (signal.SIGTERM, "footprint", ("footprint", "mlflow")),
    (signal.SIGINT, "mlflow", ("mlflow",)),
]
INTERRUPT_IDS = [f"{number.name}-{stage}" for number, stage, _ in INTERRUPTS]
# one more case signals a child process, as a parent (or `kill`) would: the ONNX route of an .onnx model, whose process
# never imports TensorFlow
REAL_PROCESS = (signal.SIGTERM, "calibration", ("calibration", "evaluate_quantized"))
REAL_PROCESS_ID = "SIGTERM-calibration-onnx-child"


@pytest.fixture(scope="module")
def interrupted_runs(tmp_path_factory) -> dict[str, tuple]:
    """Every run of INTERRUPTS and REAL_PROCESS, by test id: what _run_until returns. The child of REAL_PROCESS runs
    while the others run in this process, one after the other."""
    pytest.importorskip("mlflow", reason="the mlflow stage needs the optional extra")

    def interrupted(case: tuple, in_process: bool) -> tuple:
        number, stage, _ = case
        tmp_path = tmp_path_factory.mktemp(f"interrupt_{stage}")
        config = demo_config(tmp_path, operation_mode="chain_eqeb", dataset__test_path=str(DEMO / "digits"))
        if not in_process:
            config["general"]["model_path"] = str(tiny_onnx(tmp_path / "tiny.onnx"))
            config["quantization"].update(quantizer="Onnx_quantizer", quantization_input_type="float")
        return _run_until(tmp_path, config, stage, number, in_process)

    with ThreadPoolExecutor(1) as pool:
        child = pool.submit(interrupted, REAL_PROCESS, False)
        runs = {name: interrupted(case, True) for name, case in zip(INTERRUPT_IDS, INTERRUPTS)}
        return {**runs, REAL_PROCESS_ID: child.result()}


@pytest.mark.parametrize(
    ("number", "stage", "landed"), [*INTERRUPTS, REAL_PROCESS], ids=[*INTERRUPT_IDS, REAL_PROCESS_ID]
)
def test_interrupt_at_any_stage(interrupted_runs, request, number, stage, landed):
    code, stages, out, err, run_dir = interrupted_runs[request.node.callspec.id]
    assert stage in stages, stages
    assert code == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err.strip().splitlines() == ["stquant: interrupted: no partial model was kept"]
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events[-1] == {"event": "error", "message": "interrupted: no partial model was kept", "exit_code": 130}
    summary = summary_of(run_dir)
    assert events[-2] == {"event": "result", "summary": summary}
    assert summary["status"] == "interrupted" and summary["failed_stage"] in landed, summary["failed_stage"]
    assert not list(run_dir.rglob("*.part"))
    for model in run_dir.rglob("*.tflite"):  # written before the interrupt: whole
        from ai_edge_litert.interpreter import Interpreter

        Interpreter(model_path=str(model)).allocate_tensors()


def test_interrupt_while_the_kept_float_graph_is_evaluated_beside_the_import(tmp_path, capsys, monkeypatch):
    """A chain whose float graph an earlier run kept evaluates it in a thread while TensorFlow is imported:
    Ctrl-C then stops both (exit 130, one line, no traceback) and leaves no quantized model."""
    config = demo_config(tmp_path, operation_mode="chain_eqe", dataset__test_path=str(DEMO / "digits"))
    with monkeypatch.context() as env:  # the earlier run, here: it only fills the statistics cache
        env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
        earlier = write(tmp_path, {**config, "quantization": {**config["quantization"], "granularity": "per_tensor"}})
        fill = [
            "run",
            earlier,
            "--output-dir",
            tmp_path / "fill",
            "--progress",
            "none",
        ]  # its quantized model: not ours
        assert run_cli(capsys, *fill)[0] == 0
    code, stages, _, err, run_dir = _run_until(tmp_path, config, "evaluate_float", signal.SIGINT)
    assert "import_tensorflow" in stages and "calibration" not in stages, stages  # evaluated before quantizing
    assert code == 130, err
    assert err.strip().splitlines() == ["stquant: interrupted: no partial model was kept"]
    summary = summary_of(run_dir)
    assert summary["status"] == "interrupted" and summary["failed_stage"] in ("import_tensorflow", "evaluate_float")
    assert not list(run_dir.rglob("*.tflite")) and not list(run_dir.rglob("*.part"))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, capsys, umask, mode):
    previous = os.umask(umask)
    try:
        config = demo_config(tmp_path, operation_mode="chain_eqe", dataset__test_path=str(DEMO / "digits"))
        run_dir = tmp_path / "run"
        assert run_cli(capsys, "run", write(tmp_path, config), "--output-dir", run_dir, "--progress", "none")[0] == 0
    finally:
        os.umask(previous)
    written = [
        run_dir / "config.yaml",
        run_dir / "run_summary.json",
        run_dir / "stquant.log",
        run_dir / "quantized_models" / "quantized_model.tflite",
        *run_dir.glob("*.png"),
    ]
    assert len(written) == 6
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: oct(mode) for p in written}


def test_overwriting_keeps_the_file_mode(tmp_path):
    from engine.common.atomic import write_text_atomic
    from stquant_tui.draft import Draft

    target = tmp_path / "cfg.yaml"
    target.write_text("old")
    target.chmod(0o640)
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    # the wizard's Save goes through the same writer
    draft = Draft.load(ROOT / "sample_configs" / "quantization_config.yaml")
    draft.save(target)
    assert "quantization" in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o640
    previous = os.umask(0o022)
    try:
        draft.save(tmp_path / "new.yaml")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.yaml").stat().st_mode) == 0o644


def test_run_folder_config_runs_again_from_anywhere(tmp_path, capsys, monkeypatch):
    """The sample config's relative paths are found from its folder; the run's copy names them absolutely."""
    monkeypatch.chdir(tmp_path)
    sample = ROOT / "sample_configs" / "chain_eqeb_config.yaml"
    run_dir = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "run", sample, f"mlflow.uri={tmp_path / 'mlruns'}", "--output-dir", run_dir, "--progress", "none"
    )
    assert code == 0, err
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    given = yaml.safe_load(sample.read_text())
    assert saved["general"]["model_path"] == str(DEMO / "digits_cnn.h5")
    assert saved["dataset"]["quantization_path"] == saved["dataset"]["test_path"] == str(DEMO / "digits")
    assert saved["hydra"]["run"]["dir"] == str(tmp_path / "experiments_outputs" / "${now:%Y_%m_%d_%H_%M_%S}")
    assert saved["dataset"]["class_names"] == given["dataset"]["class_names"]
    assert saved["benchmarking"] == given["benchmarking"] and saved["operation_mode"] == given["operation_mode"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli(capsys, "validate", run_dir / "config.yaml")
    assert code == 0, err


class _SummaryJob(Job):
    """The smallest job: its record is a RunSummary kept in memory."""

    def save(self) -> None:
        self.saved = self.record.model_copy()

    def announce(self) -> None:
        pass


def test_an_error_that_an_interrupt_caused_inside_a_library_still_ends_as_interrupted(tmp_path):
    """A KeyboardInterrupt that lands inside library code may come out as another error (a file closed under
    it: EBADF). Once the user interrupted, the run ends interrupted (exit 130), not as an engine failure."""

    def library_call() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise OSError(9, "Bad file descriptor") from None

    job = _SummaryJob(Reporter(), tmp_path, RunSummary(operation_mode="quantization", run_dir=str(tmp_path)))

    def work() -> None:
        with job.stage("quantize"):
            library_call()

    with pytest.raises(Interrupted):
        job.perform(work)
    assert (job.saved.status, job.saved.failed_stage) == ("interrupted", "quantize")
