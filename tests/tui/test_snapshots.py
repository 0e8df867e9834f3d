"""Pictures of every step and the Summary at 80x24 and 120x40 (pytest-textual-snapshot), plus an error case.

Deterministic: bundled demo config (relative paths), fake engine, fixed ETA clock, no cursor blink,
no animations; Review shows a fixed verdict (the real one names this checkout's absolute paths).
Update with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import pytest
from fake_engine import recorded_summary
from textual.clock import MockClock
from textual.widgets import Input, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, HERE, settle, wait_until

from engine.run.summary import RunSummary
from stquant_tui.app import StquantApp
from stquant_tui.messages import RunLog, RunProgress, RunStage, VerdictReady
from stquant_tui.verdict import Verdict

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
WARNING = "dataset.quantization_path: skipped 1 non-image file(s) in demo/digits, e.g. demo/digits/digit_0/notes.txt"


def make_app(clock=None) -> StquantApp:
    return StquantApp(DEMO_CONFIG, out_path="stquant_config.yaml", engine_cmd=FAKE_ENGINE, clock=clock)


async def ready_form(pilot, step: str) -> None:
    await settle(pilot)
    await wait_until(pilot, lambda: pilot.app.verdict is not None)
    await wait_until(pilot, lambda: "images" in str(pilot.app.query_one("#dataset-feedback", Static).render()))
    pilot.app.step = step
    if step == "model":
        await wait_until(pilot, lambda: "Output width" in str(pilot.app.query_one("#model-info", Static).render()))
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("step", ["dataset", "preprocessing", "model", "quantization"])
def test_form_step(snap_compare, step, size):
    async def ready(pilot):
        await ready_form(pilot, step)

    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=ready)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_review_step(snap_compare, size):
    async def ready(pilot):
        await ready_form(pilot, "review")
        app = pilot.app
        app.on_verdict_ready(VerdictReady(app._checked, Verdict(0, [], [WARNING])))
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=ready)


def test_dataset_step_with_inline_errors(snap_compare):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.query_one("#dataset-seed", Input).value = "twelve"
        pilot.app.query_one("#dataset-quantization_split", Input).value = "2"
        await pilot.press("ctrl+n")  # refused: focus goes to the first bad field, the nav line names it
        await wait_until(pilot, lambda: "images" in str(pilot.app.query_one("#dataset-feedback", Static).render()))
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZES["80x24"], run_before=ready)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_run_step_mid_calibration(snap_compare, size):
    clock = MockClock()

    async def ready(pilot):
        await settle(pilot)
        app = pilot.app
        app.step = "run"
        run = app.query_one("#step-run")
        run.reset("Starting quantization…")
        app.running = True
        for message in (
            RunStage("load_model"),
            RunLog("INFO", "loaded demo/digits_cnn.h5"),
            RunStage("calibration"),
            RunProgress("calibration", 0, 300),
        ):
            run.post_message(message)
            await pilot.pause()
        clock.set_time(10.0)
        run.post_message(RunProgress("calibration", 120, 300))
        await pilot.pause()

    assert snap_compare(make_app(clock), terminal_size=SIZES[size], run_before=ready)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_summary_step(snap_compare, size):
    summary = RunSummary.model_validate(recorded_summary("/runs/2026_01_01"))

    async def ready(pilot):
        await settle(pilot)
        pilot.app.query_one("#step-summary").show(summary)
        pilot.app.step = "summary"
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=ready)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_summary_step_that_goes_wrong(snap_compare, size):
    """A recorded real run (recorded_run_summary_no_fit.json): a large drop, RAM that does not fit, 10 warnings."""
    text = (HERE / "recorded_run_summary_no_fit.json").read_text().replace("RUN_DIR", "/runs/2026_01_01")
    summary = RunSummary.model_validate_json(text)

    async def ready(pilot):
        await settle(pilot)
        pilot.app.query_one("#step-summary").show(summary)
        pilot.app.step = "summary"
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=ready)
