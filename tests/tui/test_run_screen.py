"""Run and Summary steps driven by the fake engine: progress, summary tables, cancel with confirmation."""

from __future__ import annotations

import json
from pathlib import Path

from summary_figures import assert_summary_shows
from textual.widgets import DataTable, ProgressBar, Static
from tui_helpers import DEMO_CONFIG, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.messages import RunProgress
from stquant_tui.widgets.dialogs import ConfirmScreen


async def test_run_reaches_summary_with_model_path_and_footprint(fake_engine, tmp_path):
    seen: list = []
    app = StquantApp(DEMO_CONFIG, engine_cmd=fake_engine)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.step == "summary")
        await pilot.pause()
        assert any(isinstance(m, RunProgress) for m in seen)
        written = json.loads((tmp_path / "run" / "run_summary.json").read_text())  # a real run's, replayed
        assert written["quantized_model"] == str(tmp_path / "run" / "quantized_models" / "quantized_model.tflite")
        assert_summary_shows(app, written)
        block = str(app.query_one("#summary-status", Static).render())
        assert "Accuracy        96.3% → 97.0% (▲ +0.7 pt) on 300 images" in block
        assert "Board           NUCLEO-F401RE (STM32F401RET6): ✓ fits" in block
        assert "Board flash     502.3 KiB free of 512 (98.1%)" in block
        assert "Board RAM       85.6 KiB free of 96 (89.1%)" in block
        assert "Inference time  ~22.32 ms on NUCLEO-F401RE (Cortex-M4, 84 MHz)" in block
        assert app.query_one("#summary-layers", DataTable).get_row_at(1)[4] == "5,484"  # live activation bytes
        config = Path(app.process.argv[len(fake_engine) + 1])
        assert config.name.startswith(".stquant-tui-run-") and not config.exists()  # temp config removed
        assert not list(DEMO_CONFIG.parent.glob(".stquant-tui-*"))  # nothing beside the user's config
        await pilot.press("l")
        assert str(tmp_path / "run") in "\n".join(app.query_one("#step-run").lines)
        await pilot.press("a")
        assert app.step == "dataset"


async def test_cancel_asks_then_stops_the_engine_and_ctrl_q_during_a_run_asks_first_then_stops_it(
    fake_engine, tmp_path, monkeypatch
):
    """One app: esc or Cancel during a run asks first, then stops the engine (no summary, no model); during a second
    run ctrl+q asks first too, then stops the engine cleanly and quits."""
    monkeypatch.setenv("FAKE_ENGINE_SLOW", "1")
    seen: list = []
    app = StquantApp(DEMO_CONFIG, engine_cmd=fake_engine)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.click("#run")  # runs once validate (started on Review) passes
        await wait_until(pilot, lambda: app.step == "run" and app.query_one("#run-progress", ProgressBar).progress > 0)
        assert app.step == "run" and app.running
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # changed my mind
        await pilot.pause()
        assert app.running
        await pilot.click("#cancel")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#answer-yes")
        await wait_until(pilot, lambda: not app.running)
        assert app.last_run.exit_code == 130
        assert app.step == "run"  # no summary: stays on the log
        assert not list((tmp_path / "run").rglob("*.tflite"))
        assert not any("interrupted" in line or "✗" in line for line in app.query_one("#step-run").lines)
        stage = str(app.query_one("#run-stage", Static).render())
        assert stage.startswith("Cancelled") and "fail" not in stage.lower()
        assert not [n for n in app._notifications if "fail" in str(n.message).lower() + str(n.title).lower()]
        assert app.last_run.summary.status == "interrupted" and app.last_run.summary.failed_stage == "calibration"

        app.step = "review"
        seen.clear()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: any(isinstance(m, RunProgress) and m.done > 0 for m in seen))
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert app.running and app.is_running
        process = app.process.process
        config = Path(app.process.argv[len(fake_engine) + 1])
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)
    assert process.poll() == 130  # stopped cleanly (SIGINT), not killed
    assert not config.exists()


async def test_a_failure_is_said_once_and_is_no_toast_and_the_log_follows_unless_scrolled_back(
    fake_engine, monkeypatch
):
    """One app: a failed run says why once (no toast); then the run log follows new lines unless scrolled back."""
    monkeypatch.setenv("FAKE_ENGINE_FAIL", "dataset.quantization_path: dataset folder not found: /nowhere")
    app = StquantApp(DEMO_CONFIG, engine_cmd=fake_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.last_run is not None)
        await pilot.pause()
        lines = app.query_one("#step-run").lines
        assert sum("dataset folder not found" in line for line in lines) == 1, lines
        assert str(app.query_one("#run-stage", Static).render()) == "Failed (exit 3): see the last line of the log"
        assert not app._notifications

        app.step = "run"  # the log follows new lines unless scrolled back
        run = app.query_one("#step-run")
        log = app.query_one("#run-log")
        for index in range(100):
            run.log_line(f"line {index}")
        await pilot.pause()
        await pilot.pause()
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y  # the last lines are visible
        log.scroll_to(y=10, animate=False)
        await pilot.pause()
        run.log_line("line 100")
        await pilot.pause()
        assert log.scroll_y == 10  # reading back: the view stays
        log.scroll_end(animate=False)
        await pilot.pause()
        run.log_line("line 101")
        await pilot.pause()
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y
