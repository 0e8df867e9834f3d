"""`stquant sweep` on the bundled demo: real runs in real worker processes (a local pool, a local Ray cluster).

One local sweep (the demo config, a config whose model is missing and one whose model has a Lambda only
--trust-model lets run, x 2 variants) is shared by most tests; its cells are compared with separate runs of the same
configs, then resumed. The sweeps that lose a worker mid-cell (local, then interrupted; Ray) run a tiny ONNX model on
the ONNX route, so that their workers never import TensorFlow. Few images per cell keep the whole file cheap.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from engine.config.schema import load_config
from engine.run.events import Reporter
from engine.run.orchestrator import run
from engine.run.protocol import SweepCellEvent, SweepEvent, SweepProgressEvent, parse_event, wire
from engine.run.sweep import MARKER, finished
from engine.run.sweep_record import Cell, Sweep, sweep_schema
from tests.conftest import DEMO, ROOT
from tests.test_cli_errors import assert_one_error, demo_config, run_cli
from tests.test_keras_lambda import save, tf_keras_model
from tests.tiny_models import tiny_onnx

VARY = ["--vary", "quantization.granularity=per_channel,per_tensor"]
IMAGES_PER_CLASS = 4
JSONL = ["--progress", "jsonl"]


def sweep_command(*args):
    return [sys.executable, "-m", "engine", "sweep", *map(str, args)]


def onnx_config(root: Path, **changes) -> dict:
    """chain_eqeb of a tiny ONNX model (root/tiny.onnx) on the demo's images in root/digits, on the ONNX route."""
    return demo_config(
        root,
        operation_mode="chain_eqeb",
        general__model_path=str(root / "tiny.onnx"),
        dataset__quantization_path=str(root / "digits"),
        dataset__test_path=str(root / "digits"),
        quantization__quantizer="Onnx_quantizer",
        quantization__quantization_input_type="float",
        benchmarking__board="NUCLEO-F401RE",
        **changes,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Configs on a small copy of the demo images (and, apart, leaky.yaml: a model with a Lambda stquant does not
    recognise, quantized only; onnx.yaml: a tiny ONNX model), and an environment with a statistics cache of its own."""
    root = tmp_path_factory.mktemp("sweep")
    images = root / "digits"
    for folder in sorted((DEMO / "digits").iterdir()):
        if folder.is_dir():
            (images / folder.name).mkdir(parents=True)
            for photo in sorted(p for p in folder.iterdir() if p.suffix == ".png")[:IMAGES_PER_CLASS]:
                shutil.copy(photo, images / folder.name)
    configs = root / "configs"
    configs.mkdir()
    common = {
        "operation_mode": "chain_eqeb",
        "dataset__quantization_path": str(images),
        "dataset__test_path": str(images),
    }
    variants = {
        "a.yaml": demo_config(root, benchmarking__board="NUCLEO-F401RE", **common),
        "bad.yaml": demo_config(root, general__model_path=str(root / "missing.h5"), **common),
    }
    for name, config in variants.items():
        (configs / name).write_text(yaml.safe_dump(config))
    model = save(tf_keras_model(("leaky", lambda t: tf.nn.leaky_relu(t)), classes=10), root / "leaky.h5")
    leaky = demo_config(
        root, general__model_path=str(model), dataset__quantization_path=str(images), operation_mode="chain_qb"
    )
    (root / "leaky.yaml").write_text(yaml.safe_dump(leaky))
    tiny_onnx(root / "tiny.onnx")
    (root / "onnx.yaml").write_text(yaml.safe_dump(onnx_config(root)))
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"), "PYTHONPATH": str(ROOT), "TF_USE_LEGACY_KERAS": "1"}
    return root, configs, env


@pytest.fixture(scope="module")
def local_sweep(setup):
    """One local sweep of every config x 2 variants with 2 workers, trusting the models: (completed process, events,
    sweep)."""
    root, configs, env = setup
    out = root / "local"
    done = subprocess.run(
        sweep_command(configs, root / "leaky.yaml", *VARY, "--jobs", 2, "--trust-model", "--output-dir", out, *JSONL),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    events = [parse_event(line) for line in lines[:-1]]
    assert [wire(event) for event in events] == lines[:-1]  # exactly the protocol's events
    return done, events, Sweep.model_validate_json((out / "sweep.json").read_text())


def test_sweep_outcome_and_events(local_sweep, setup):
    done, events, sweep = local_sweep
    assert done.returncode == 1, done.stderr  # a cell failed
    assert done.stderr.strip() == "stquant: 2 of 6 cells failed (see sweep.md)"
    assert done.stdout.splitlines()[-1] == sweep.run_dir == str((setup[0] / "local").resolve())
    assert [cell.status for cell in sweep.cells] == ["ok"] * 2 + ["failed"] * 2 + ["ok"] * 2
    assert (sweep.status, sweep.done, sweep.failed, sweep.executor, sweep.jobs) == ("failed", 4, 2, "local", 2)
    assert isinstance(events[-1], SweepEvent) and events[-1].sweep == sweep
    finished_cells = [event.cell.index for event in events if isinstance(event, SweepCellEvent)]
    assert sorted(finished_cells) == list(range(6))
    progress = [event for event in events if isinstance(event, SweepProgressEvent)]
    assert progress[0].total == 6 and progress[0].running == 2 and progress[0].eta_seconds is None
    last = progress[-1]
    assert (last.done, last.running, last.failed, last.eta_seconds) == (4, 0, 2, 0.0)


def test_failed_cells_name_their_stage_and_path(local_sweep):
    _, _, sweep = local_sweep
    for cell in sweep.cells[2:4]:
        assert cell.failed_stage == "prepare"
        assert "general.model_path" in cell.error and "missing.h5" in cell.error and "\n" not in cell.error
    table = (Path(sweep.run_dir) / "sweep.md").read_text()
    assert "## Failed cells" in table and "cell 2 (bad.yaml, granularity=per_channel) failed in prepare" in table
    assert table.count("| ok |") == 4


def assert_figures_of_a_separate_run(cell: Cell, run_dir: Path) -> None:
    """The cell's figures are those of a separate run (in this process) of its config with its variant's override."""
    summary = run(load_config(cell.config, cell.overrides), Reporter(), run_dir)
    accuracy, footprint = summary.accuracy, summary.footprint
    assert (cell.float_accuracy, cell.int8_accuracy, cell.agreement) == (
        accuracy.float,
        accuracy.quantized,
        accuracy.agreement,
    )
    assert (cell.weights_flash_kib, cell.activation_ram_kib, cell.estimated_inference_ms) == (
        footprint.weights_flash_kib,
        footprint.activation_ram_kib,
        footprint.estimated_inference_ms,
    )


def test_cells_equal_separate_runs(local_sweep, tmp_path):
    """Each cell's figures are those of a separate run of its config with its variant's override."""
    _, _, sweep = local_sweep
    for cell in sweep.cells[:2]:
        assert Path(cell.run_dir).parent.name == "a" and (Path(cell.run_dir) / "run_summary.json").is_file()
        assert_figures_of_a_separate_run(cell, tmp_path / f"run_{cell.index}")
    assert sweep.cells[0].board == "NUCLEO-F401RE" and sweep.cells[0].estimated_inference_ms is not None
    assert len({cell.worker for cell in sweep.cells}) <= 2  # 2 workers ran the 6 cells, TensorFlow loaded once each
    leaky = sweep.cells[4]  # no board in its config
    assert leaky.board is None and leaky.estimated_inference_ms is None and leaky.weights_flash_kib


def test_resume_runs_nothing_twice(local_sweep, setup, capsys):
    _, configs, _ = setup
    _, _, sweep = local_sweep
    stamps = {cell.index: os.stat(Path(cell.run_dir) / "run_summary.json").st_mtime_ns for cell in sweep.cells[:2]}
    code, _, err = run_cli(capsys, "sweep", str(configs / "a.yaml"), *VARY, "--output-dir", sweep.run_dir, "--resume")
    assert code == 0, err
    resumed = Sweep.model_validate_json((Path(sweep.run_dir) / "sweep.json").read_text())
    assert [cell.reused for cell in resumed.cells] == [True] * 2 and "cells" not in resumed.timings
    assert [cell.model_dump(exclude={"reused"}) for cell in resumed.cells] == [
        cell.model_dump(exclude={"reused"}) for cell in sweep.cells[:2]
    ]
    assert stamps == {
        cell.index: os.stat(Path(cell.run_dir) / "run_summary.json").st_mtime_ns for cell in sweep.cells[:2]
    }


def test_a_finished_sweep_folder_needs_resume(local_sweep, setup, capsys):
    _, configs, _ = setup
    _, _, sweep = local_sweep
    code, _, err = run_cli(capsys, "sweep", str(configs / "a.yaml"), *VARY, "--output-dir", sweep.run_dir)
    assert code == 2 and "add --resume" in err


def test_resume_reruns_a_cell_of_another_version_or_config(local_sweep):
    _, _, sweep = local_sweep
    cell = sweep.cells[0]
    assert finished(cell) is not None
    assert finished(cell.model_copy(update={"code_version": "0.0.0"})) is None
    assert finished(cell.model_copy(update={"config_hash": "0" * 64})) is None
    config = Path(cell.run_dir) / "config.yaml"
    original = config.read_text()
    try:  # a run written into the cell's folder by hand since: its config is not the cell's
        config.write_text(original.replace("per_channel", "per_tensor"))
        assert finished(cell) is None
    finally:
        config.write_text(original)
    marker = Path(cell.run_dir) / MARKER
    assert json.loads(marker.read_text())["status"] == "ok"


def _local_workers(sweep_pid: int) -> list[int]:
    """Pids of the worker processes of a local sweep (spawned children of its process)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == sweep_pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)


def test_lost_local_worker_then_interrupt(setup, tmp_path):
    """The worker running the first cell is killed: the cell runs again in a new worker. Then Ctrl-C while the
    second cell runs: exit 130, sweep.json interrupted, the first cell kept. The config logs to an MLflow URI the test
    listens on: the first cell's logging is refused (a warning), the second cell's is held open until Ctrl-C."""
    root, _, env = setup
    out = root / "interrupted"
    with socket.create_server(("127.0.0.1", 0)) as mlflow:
        mlflow.settimeout(120)
        config = tmp_path / "onnx.yaml"
        config.write_text(yaml.safe_dump(onnx_config(root, mlflow__uri=f"http://127.0.0.1:{mlflow.getsockname()[1]}")))
        process = subprocess.Popen(
            sweep_command(config, *VARY, "--jobs", 1, "--output-dir", out, "--progress", "none"),
            env={**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "120"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_for(out / "onnx" / "variant_0" / MARKER)  # the first cell started
            (worker,) = _local_workers(process.pid)
            os.kill(worker, signal.SIGKILL)
            mlflow.accept()[0].close()  # the first cell, run again, logs to MLflow
            held, _ = mlflow.accept()  # the second cell logs to MLflow: it waits for an answer
            os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the sweep and its workers
            _, stderr = process.communicate(timeout=120)
            held.close()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "stquant: interrupted: no partial model was kept"
    sweep = Sweep.model_validate_json((out / "sweep.json").read_text())
    assert sweep.status == "interrupted" and sweep.failed_stage == "cells"
    assert [(cell.status, cell.attempts) for cell in sweep.cells] == [("ok", 2), ("interrupted", 1)]
    assert sweep.cells[0].float_accuracy is not None
    assert json.loads((out / "onnx" / "variant_1" / "run_summary.json").read_text())["status"] == "interrupted"


def test_ray_missing_is_one_line(setup, capsys, monkeypatch):
    _, configs, _ = setup
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    monkeypatch.chdir(setup[0])
    code, _, err = run_cli(capsys, "sweep", str(configs / "a.yaml"), "--executor", "ray", "--output-dir", "x")
    assert code == 2 and not (setup[0] / "x").exists()
    assert err == "stquant: --executor ray: Ray is not installed; install the extra: pip install 'stquant[ray]'\n"


def _ray_task_workers(cache: str) -> list[int]:
    """Pids of the Ray workers running a cell, among the processes started with this test's cache folder."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
            if title.startswith(b"ray::run_cell") and cache.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def _kill_one_worker(cache: str, marker: Path, stop: threading.Event, killed: list[int]) -> None:
    """Kill the Ray worker running a cell once the first cell started (its `marker` written; /proc is read only
    from then on: reading every process's files each poll while Ray starts cost this process CPU)."""
    while not stop.is_set() and not killed:
        workers = _ray_task_workers(cache) if marker.exists() else []
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])
        time.sleep(0.05)


def test_ray_sweep_survives_a_lost_worker(setup, tmp_path):
    pytest.importorskip("ray")
    root, _, env = setup
    out = root / "ray"
    stop, killed = threading.Event(), []
    marker = out / "onnx" / "variant_0" / MARKER
    killer = threading.Thread(target=_kill_one_worker, args=(env["XDG_CACHE_HOME"], marker, stop, killed))
    killer.start()
    try:
        done = subprocess.run(
            sweep_command(root / "onnx.yaml", *VARY, "--executor", "ray", "--jobs", 1, "--output-dir", out),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        killer.join()
    assert done.returncode == 0, done.stderr
    assert killed, "no Ray worker was seen running a cell"
    sweep = Sweep.model_validate_json((out / "sweep.json").read_text())
    assert (sweep.executor, sweep.status, sweep.done, sweep.jobs) == ("ray", "ok", 2, 1)
    assert [cell.attempts for cell in sweep.cells] == [2, 1]  # the first cell's worker was lost: it ran again
    assert [cell.board for cell in sweep.cells] == ["NUCLEO-F401RE"] * 2
    for cell in sweep.cells:
        assert_figures_of_a_separate_run(cell, tmp_path / f"run_{cell.index}")
    assert done.stdout.splitlines()[-1] == str(out.resolve())


def test_schema_sweep(capsys):
    code, out, _ = run_cli(capsys, "schema", "sweep")
    schema = json.loads(out)
    assert code == 0 and schema == sweep_schema() and {"cells", "status", "executor"} <= set(schema["properties"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "--jobs 0: at least 1"),
        (["--resume"], "--resume: name the sweep folder to finish with --output-dir"),
        (["--address", "ray://x:1"], "--address: only with --executor ray"),
        (["--vary", "dataset.seed=1,2"], "--vary dataset.seed: not a key a variant may vary"),
    ],
)
def test_usage_errors_are_one_line(setup, capsys, options, message):
    assert_one_error(capsys, ["sweep", str(setup[1] / "a.yaml"), *options], 2, message)


def test_a_ray_address_where_nothing_listens_is_one_line(setup, capsys):
    pytest.importorskip("ray")
    argv = ["sweep", str(setup[1] / "a.yaml"), "--executor", "ray", "--address", "127.0.0.1:1"]
    assert_one_error(
        capsys,
        [*argv, "--output-dir", str(setup[0] / "nowhere")],
        3,
        "--address 127.0.0.1:1: no Ray cluster answers there",
    )
    assert not (setup[0] / "nowhere").exists()


def test_a_missing_config_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_error(
        capsys, ["sweep", str(tmp_path / "nope.yaml")], 3, f"{tmp_path / 'nope.yaml'}: no such config file or folder"
    )
    assert not (tmp_path / "experiments_outputs").exists()


def test_trust_model_reaches_the_cells(setup, local_sweep, tmp_path):
    """A model with a Lambda stquant does not recognise: its cell fails without --trust-model and runs with it, in
    the sweep's worker process (which does not inherit the driver's choice)."""
    from engine.run.sweep import plan_cells, run_cell

    config = setup[0] / "leaky.yaml"
    refused = run_cell(plan_cells([config], [], {}, tmp_path / "untrusted")[0], use_cache=False)
    assert refused.status == "failed" and "Lambda layer 'leaky'" in refused.error, refused
    trusted = local_sweep[2].cells[4:]  # the shared sweep ran with --trust-model
    assert [(Path(cell.config).name, cell.status) for cell in trusted] == [("leaky.yaml", "ok")] * 2, trusted
    assert all(cell.weights_flash_kib for cell in trusted)
