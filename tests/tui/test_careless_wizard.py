"""The wizard under careless use (issue 19): quitting at once, an engine that is missing, hangs or writes junk,
and config files the round-trip loader refuses. Each ends in one line naming the cause, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from textual.widgets import Button, OptionList, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, wait_until

from engine.common.errors import ConfigError
from stquant_tui.__main__ import main
from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.draft import Draft
from stquant_tui.workers import RETRY_CHECK

# A stand-in engine: `validate` answers ok (or hangs, its pid in SCRIPT.pid), `inspect` refuses, `run` and `compare` write bytes that are
# not UTF-8 on stdout and then wait to be stopped.
ENGINE_SCRIPT = """\
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
command = sys.argv[1]
if command == "validate":
    if {hangs}:
        with open(sys.argv[0] + ".pid", "w") as pid:
            pid.write(str(os.getpid()))
        time.sleep(30)
    sys.exit(0)
if command in ("run", "compare"):
    sys.stdout.buffer.write(b'{{"event": "stage", "name": "load_model"}}\\n\\xff\\xfe junk\\n')
    sys.stdout.flush()
    time.sleep(30)
print("stquant: inspect is not available here", file=sys.stderr)
sys.exit(3)
"""


def engine(tmp_path: Path, hangs: bool = False) -> list[str]:
    """The stand-in engine's command (a tiny script, no TensorFlow)."""
    script = tmp_path / ("hanging_engine.py" if hangs else "junk_engine.py")
    script.write_text(ENGINE_SCRIPT.format(hangs=hangs))
    return [sys.executable, str(script)]


def text_of(node: StquantApp | CompareScreen, selector: str) -> str:
    return str(node.query_one(selector, Static).render())


async def test_quitting_right_after_opening_a_config_never_raises():
    """ctrl+q while the dataset scan runs, and from 0.05 s on while a step is being mounted (was NoMatches): from
    0.2 s on, the Model step, whose validate and inspect then run."""
    for delay in (0, 0, 0, 0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3):
        app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
        async with app.run_test(size=(80, 24)) as pilot:  # re-raises anything the app raised
            if delay:  # 0: the very first moment, before the first screen is shown
                await pilot.pause(delay)
            if delay >= 0.05:
                app.step = "quantization" if delay < 0.2 else "model"  # mounted when first shown
            await pilot.press("ctrl+q")
        assert app.return_code == 0, delay


async def test_review_names_a_missing_engine_command_and_retry_checks_again(tmp_path, monkeypatch):
    missing = tmp_path / "bin" / "stquant-engine"
    monkeypatch.setenv("STQUANT_TUI_ENGINE", str(missing))
    app = StquantApp(DEMO_CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        app.step = "review"  # validate runs where its answer is shown
        await wait_until(pilot, lambda: app.check_error is not None)
        await pilot.pause()
        assert text_of(app, "#review-status") == (
            f"✗ stquant validate did not answer ({missing}: command not found); select Retry and press Enter"
        )
        listing = app.query_one("#review-problems", OptionList)
        assert listing.display and listing.get_option_at_index(0).id == RETRY_CHECK
        missing.parent.mkdir()  # the user installs the engine command, then retries
        missing.write_text(f'#!/bin/sh\nexec {" ".join(FAKE_ENGINE)} "$@"\n')
        missing.chmod(0o755)
        listing.focus()
        listing.highlighted = 0
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.verdict is not None)
        assert app.verdict.ok and app.check_error is None
        assert text_of(app, "#review-status").startswith("✓ stquant validate: ok.")
        assert listing.option_count == 0


async def test_review_says_when_validate_does_not_answer(tmp_path):
    command = engine(tmp_path, hangs=True)
    app = StquantApp(DEMO_CONFIG, engine_cmd=command)
    app.validate_timeout = 0.5
    async with app.run_test(size=(80, 24)) as pilot:
        app.step = "review"  # validate runs where its answer is shown
        await wait_until(pilot, lambda: app.check_error is not None)
        await pilot.pause()
        assert text_of(app, "#review-status") == (
            f"✗ stquant validate did not answer ({' '.join(command)}: no answer "
            "within 0.5 s); select Retry and press Enter"
        )
        assert app.verdict is None and not app.query_one("#run", Button).disabled  # still usable: run, save, edit


async def test_quitting_while_validate_hangs_stops_it_at_once(tmp_path):
    command = engine(tmp_path, hangs=True)
    pid_file = Path(command[1] + ".pid")
    app = StquantApp(DEMO_CONFIG, engine_cmd=command)
    async with app.run_test(size=(80, 24)) as pilot:
        app.step = "review"
        await wait_until(pilot, pid_file.exists)
        await pilot.press("ctrl+q")
    pid = int(pid_file.read_text())
    for _ in range(100):  # killed as the app unmounts (it would sleep 30 s), then reaped by the thread that ran it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"validate (pid {pid}) still runs after the wizard quit")


async def test_a_run_whose_output_cannot_be_read_fails_and_back_works_again(tmp_path):
    command = engine(tmp_path)
    app = StquantApp(DEMO_CONFIG, engine_cmd=command)
    async with app.run_test(size=(80, 24)) as pilot:
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None)
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.step == "run" and not app.running)
        assert text_of(app, "#run-stage") == "Failed (exit 1): see the last line of the log"
        last = next(line for line in app.query_one("#step-run").lines if line.startswith("✗"))
        assert last.startswith(
            f"✗ the wizard could not read the run's events ({' '.join(command)}: "
            "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"
        )
        assert last.endswith("); engine stopped")
        assert not app.query_one("#back", Button).disabled
        await wait_until(pilot, lambda: not app.process.running)  # the engine was stopped, not left writing
        await pilot.press("ctrl+p")
        assert app.step == "review"


async def test_a_comparison_whose_output_cannot_be_read_fails_and_unlocks(tmp_path):
    command = engine(tmp_path)
    app = StquantApp(DEMO_CONFIG, engine_cmd=command)
    async with app.run_test(size=(80, 24)) as pilot:
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None)
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.finished is not None)
        await pilot.pause()
        assert screen.finished.exit_code == 1 and not screen.running
        assert screen.finished.error.startswith(
            f"the wizard could not read the comparison's events ({' '.join(command)}"
            ": UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"
        )
        assert text_of(screen, "#compare-stage") == f"Failed (exit 1): {screen.finished.error}"
        assert not any(box.disabled for box in screen.query("#compare-options Checkbox"))  # options unlocked
        await wait_until(pilot, lambda: not screen.process.running)  # the engine was stopped


async def test_a_scan_or_inspect_that_raises_is_said_not_left_pending(tmp_path):
    config = tmp_path / "nul.yaml"  # a NUL byte in a path: Python refuses it before any system call
    config.write_text(
        DEMO_CONFIG.read_text()
        .replace("quantization_path: demo/digits", 'quantization_path: "/tmp/dig\\0its"')
        .replace("model_path: demo/digits_cnn.h5", 'model_path: "/tmp/x\\0.h5"')
    )
    app = StquantApp(config, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "failed" in text_of(app, "#dataset-feedback"))
        assert text_of(app, "#dataset-feedback") == "⚠ the folder scan failed: ValueError: embedded null byte"
        await app.mount_step("model")
        await wait_until(pilot, lambda: "failed" in text_of(app, "#model-info"))
        assert (
            text_of(app, "#model-info") == f"⚠ inspect failed ({' '.join(FAKE_ENGINE)}: ValueError: embedded null byte)"
        )


DUPLICATE = "general:\n  project_name: a\ndataset:\n  name: d\ngeneral:\n  model_path: m.h5\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DUPLICATE, "{f}:5: key general given twice (first at {f}:1); keep one"),
        (
            "general:\n  project_name: a\n  model_path: m.h5\n  project_name: b\n",
            "{f}:4: key general.project_name given twice (first at {f}:2); keep one",
        ),
        (
            "general:\n  project_name: a\n  0x1: x\n  1: y\n",
            "{f}:4: key 1 given twice (first in the mapping at {f}:2); keep one",
        ),
        (
            "operation_mode:\tquantization\n",
            "{f}:1: YAML syntax error: found character '\\t' that cannot start any token (indent and separate with spaces)",
        ),
    ],
    ids=["section", "nested", "written-unlike", "tab"],
)
def test_the_loader_refuses_duplicate_keys_and_tabs_in_one_line(tmp_path, capsys, text, message):
    config = tmp_path / "odd.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as refused:
        Draft.load(config)
    assert str(refused.value) == message.format(f=config)
    assert main([str(config)]) == 2  # the command line: exit 2, the same line, no traceback
    assert capsys.readouterr().err == f"stquant-tui: {message.format(f=config)}\n"
    assert config.read_text() == text


async def test_ctrl_r_while_validate_checks_runs_only_once_validate_passes(tmp_path, fake_engine):
    """ctrl+r on Review before validate answered: a config it refuses does not run (Review lists why); once it
    passes, the run starts by itself. The stand-in engine's validate takes a second, so ctrl+r comes first."""
    script = tmp_path / "slow_validate.sh"
    script.write_text(f'#!/bin/sh\n[ "$1" = validate ] && sleep 1\nexec {" ".join(fake_engine)} "$@"\n')
    script.chmod(0o755)
    app = StquantApp(DEMO_CONFIG, engine_cmd=[str(script)])
    async with app.run_test(size=(80, 24)) as pilot:
        names = app.draft.get("dataset.class_names")
        app.apply_edit("dataset.class_names", [*names[:-1], "sunflower"])  # no folder: only validate knows
        await app.mount_step("review")
        app.step = "review"
        await pilot.press("ctrl+r")
        assert app.check_pending() and app.run_when_checked
        await wait_until(pilot, lambda: not app.check_pending(), timeout=60)
        await pilot.pause()
        assert not app.verdict.ok and app.step == "review" and not app.running and app.process is None
        assert "sunflower" in str(app.query_one("#review-problems", OptionList).get_option_at_index(0).prompt)

        app.apply_edit("dataset.class_names", names)
        await pilot.press("ctrl+r")
        assert app.check_pending() and app.process is None
        await wait_until(pilot, lambda: app.step == "run" and app.process is not None, timeout=60)
        assert app.verdict.ok and not app.run_when_checked
        await wait_until(pilot, lambda: not app.running, timeout=60)
        assert app.last_run.exit_code == 0
