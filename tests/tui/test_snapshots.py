"""A few 80x24 pictures (pytest-textual-snapshot): dataset, model, review, run, summary, an error.

Deterministic: bundled demo config (relative paths), fake engine, fixed ETA clock, no cursor blink,
no animations. Update with `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from textual.clock import MockClock
from textual.widgets import Input, Static

from engine.run_summary import RunSummary
from fake_engine import recorded_summary
from stquant_tui.app import StquantApp
from stquant_tui.messages import RunLog, RunProgress, RunStage
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle, wait_until

SIZE = (80, 24)


def make_app(clock=None) -> StquantApp:
    return StquantApp(DEMO_CONFIG, out_path="stquant_config.yaml", engine_cmd=FAKE_ENGINE, clock=clock)


def test_dataset_step(snap_compare):
    async def ready(pilot):
        await settle(pilot)
        await wait_until(pilot, lambda: "images" in str(pilot.app.query_one("#dataset-feedback", Static).render()))
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_dataset_step_with_inline_errors(snap_compare):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.query_one("#dataset-seed", Input).value = "twelve"
        pilot.app.query_one("#dataset-quantization_split", Input).value = "2"
        await pilot.press("ctrl+n")  # refused: focus goes to the first bad field
        await wait_until(pilot, lambda: "images" in str(pilot.app.query_one("#dataset-feedback", Static).render()))
        pilot.app.clear_notifications()
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_model_step_after_inspect(snap_compare):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.step = "model"
        await wait_until(pilot, lambda: "Output width" in str(pilot.app.query_one("#model-info", Static).render()))
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_review_step(snap_compare):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.step = "review"
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_run_step_mid_calibration(snap_compare):
    clock = MockClock()

    async def ready(pilot):
        await settle(pilot)
        app = pilot.app
        app.step = "run"
        run = app.query_one("#step-run")
        run.reset("Starting quantization…")
        app.running = True
        for message in (RunStage("load_model"), RunLog("INFO", "loaded demo/digits_cnn.h5"),
                        RunStage("calibration"), RunProgress("calibration", 0, 300)):
            run.post_message(message)
            await pilot.pause()
        clock.set_time(10.0)
        run.post_message(RunProgress("calibration", 120, 300))
        await pilot.pause()
    assert snap_compare(make_app(clock), terminal_size=SIZE, run_before=ready)


def test_summary_step(snap_compare):
    summary = RunSummary.model_validate(recorded_summary("/runs/2026_01_01"))

    async def ready(pilot):
        await settle(pilot)
        pilot.app.query_one("#step-summary").show(summary)
        pilot.app.step = "summary"
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)
