"""The run client against a fake engine script that speaks the JSON-lines protocol."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, ROOT

from engine.run.summary import RunSummary
from stquant_tui.engine_client import RunProcess, inspect_model, scan_class_folders
from stquant_tui.messages import RunFinished, RunLog, RunProgress, RunStage


def test_run_events_become_typed_messages(fake_engine, tmp_path):
    seen: list = []
    run = RunProcess(fake_engine, DEMO_CONFIG)
    run.start()
    run.read(seen.append)
    stages = [m.name for m in seen if isinstance(m, RunStage)]
    assert stages == ["load_model", "calibration", "quantization", "footprint"]
    progress = [m for m in seen if isinstance(m, RunProgress)]
    assert progress[-1].done == progress[-1].total == 300
    assert any(isinstance(m, RunLog) and m.level == "STDERR" for m in seen)  # child stderr is captured
    finished = seen[-1]
    assert isinstance(finished, RunFinished) and finished.exit_code == 0
    assert finished.summary.status == "ok"
    assert finished.run_dir == str(tmp_path / "run")
    assert Path(finished.summary.quantized_model).exists()
    assert finished.summary == RunSummary.model_validate_json((tmp_path / "run" / "run_summary.json").read_text())


def test_progress_messages_coalesce():
    assert RunProgress("calibration", 2, 10).can_replace(RunProgress("calibration", 1, 10))
    assert not RunProgress("calibration", 2, 10).can_replace(RunStage("calibration"))


def test_cancel_sends_sigint_and_leaves_no_model(fake_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_SLOW", "1")
    seen: list = []
    run = RunProcess(fake_engine, DEMO_CONFIG)
    run.start()
    reader = threading.Thread(target=run.read, args=(seen.append,))
    reader.start()
    for _ in range(200):
        if any(isinstance(m, RunProgress) for m in seen):
            break
        time.sleep(0.02)
    run.cancel()
    reader.join(timeout=20)
    finished = seen[-1]
    assert isinstance(finished, RunFinished)
    assert finished.exit_code == 130 and finished.summary.status == "interrupted"
    assert finished.error == "interrupted by the user"
    assert not list((tmp_path / "run").rglob("*.tflite"))


def test_engine_failure_reports_the_last_stderr_line(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(
        "import sys\nprint('Traceback ...', file=sys.stderr)\nprint('boom', file=sys.stderr)\nsys.exit(1)\n"
    )
    seen: list = []
    run = RunProcess([os.sys.executable, str(script)], DEMO_CONFIG)
    run.start()
    run.read(seen.append)
    assert seen[-1] == RunFinished(1, None, "boom", None)


def test_inspect_and_folder_scan():
    info, error = inspect_model(FAKE_ENGINE, str(ROOT / "sample_configs/demo/digits_cnn.h5"))
    assert error is None and info["output_width"] == 10
    info, error = inspect_model(FAKE_ENGINE, "/nonexistent/model.h5")
    assert info is None and "not found" in error
    classes, images, others = scan_class_folders(ROOT / "sample_configs/demo/digits")
    assert len(classes) == 10 and images == 300 and others == 1


def _child(tmp_path: Path, lines: list[str], code: int = 0) -> list[str]:
    """A child that prints `lines` on stdout and exits with `code`."""
    script = tmp_path / "child.py"
    script.write_text(f"import sys\nfor line in {lines!r}:\n    print(line, flush=True)\nsys.exit({code})\n")
    return [os.sys.executable, str(script)]


def test_a_malformed_line_is_said_and_the_reading_goes_on(tmp_path):
    seen: list = []
    run = RunProcess(
        _child(
            tmp_path,
            [
                '{"event": "stage", "name": "prepare"}',
                '{"event": "progress", "stage": "c"',
                '{"event": "progress", "stage": "c", "done": "many", "total": 3}',
                '{"event": "stage", "name": "calibration"}',
                "/runs/x",
            ],
            code=1,
        ),
        DEMO_CONFIG,
    )
    run.start()
    run.read(seen.append)
    assert [m.name for m in seen if isinstance(m, RunStage)] == ["prepare", "calibration"]
    warnings = [m.message for m in seen if isinstance(m, RunLog) and m.level == "WARNING"]
    assert warnings == [
        "unreadable engine event (Invalid JSON: EOF while parsing an object at line 1 column 34): "
        '{"event": "progress", "stage": "c"',
        "unreadable engine event (progress.done: Input should be a valid integer, unable to parse "
        'string as an integer): {"event": "progress", "stage": "c", "done": "many", "total": 3}',
    ]
    assert seen[-1] == RunFinished(1, None, warnings[0], "/runs/x")  # no result: the first unreadable line says why


def test_a_compare_reads_the_same_events_once(tmp_path):
    from replay_engine import recorded_lines

    from stquant_tui.compare_client import CompareFinished, CompareProcess, CompareVariant

    lines = recorded_lines("/runs/r")
    lines.insert(5, '{"event": "variant", "variant": {"index": 0}}')  # a malformed variant: said, then ignored
    seen: list = []
    compare = CompareProcess(_child(tmp_path, lines), DEMO_CONFIG, [])
    compare.start()
    compare.read(seen.append)
    variants = [m.variant.index for m in seen if isinstance(m, CompareVariant)]
    assert variants == [0, 1, 2, 3]
    assert (
        sum(
            isinstance(m, RunLog)
            and m.message.startswith("unreadable engine event (variant.variant.name: Field required")
            for m in seen
        )
        == 1
    )
    finished = seen[-1]
    assert isinstance(finished, CompareFinished) and finished.exit_code == 0 and finished.error is None
    assert finished.comparison.run_dir == "/runs/r" and len(finished.comparison.variants) == 4
