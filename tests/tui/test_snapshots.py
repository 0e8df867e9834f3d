"""Pictures of every step and the Summary at 80x24 and 120x40, plus an error case (syrupy SVG snapshots).

One app per terminal size walks every picture in turn (an app start is the cost of a picture, not its export).
Deterministic: bundled demo config (relative paths), fake engine, fixed ETA clock, no cursor blink,
no animations; Review shows a fixed verdict (the real one names this checkout's absolute paths).
Update with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import pytest
from fake_engine import recorded_summary
from pytest_textual_snapshot import SVGImageExtension
from textual.clock import MockClock
from textual.widgets import Input, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, HERE, settle, wait_until

from engine.run.summary import RunSummary
from stquant_tui.app import StquantApp
from stquant_tui.messages import RunLog, RunProgress, RunStage, VerdictReady
from stquant_tui.verdict import Verdict

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
WARNING = "dataset.quantization_path: skipped 1 non-image file(s) in demo/digits, e.g. demo/digits/digit_0/notes.txt"
FORM_STEPS = ("dataset", "preprocessing", "model", "quantization")


async def screenshot(pilot) -> str:
    """What `snap_compare` takes: the app settled, then its SVG export."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    return pilot.app.export_screenshot(title=pilot.app.title, simplify=True)


async def show_step(pilot, step: str) -> None:
    await pilot.app.mount_step(step)  # as Next does: mounted, then shown
    pilot.app.step = step
    if step == "model":
        await wait_until(pilot, lambda: "Output width" in str(pilot.app.query_one("#model-info", Static).render()))
    await pilot.pause()
    await pilot.pause()


async def show_summary(pilot, summary: RunSummary) -> None:
    (await pilot.app.mount_step("summary")).show(summary)
    pilot.app.step = "summary"
    await pilot.pause()
    await pilot.pause()


async def run_mid_calibration(pilot, clock: MockClock) -> None:
    app = pilot.app
    run = await app.mount_step("run")
    app.step = "run"
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


async def dataset_with_inline_errors(pilot) -> None:
    """Two bad values, then ctrl+n: refused, focus goes to the first bad field, the nav line names it."""
    pilot.app.running = False
    await show_step(pilot, "dataset")
    pilot.app.query_one("#dataset-seed", Input).value = "twelve"
    pilot.app.query_one("#dataset-quantization_split", Input).value = "2"
    await pilot.press("ctrl+n")
    await wait_until(pilot, lambda: "images" in str(pilot.app.query_one("#dataset-feedback", Static).render()))
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=str)
async def test_every_step(snapshot, size):
    """Each form step, Review, the Summary of a run and of a recorded real run that goes wrong (a large drop, RAM
    that does not fit, 10 warnings), the Run step mid-calibration; at 80x24 also the Dataset step's inline errors."""
    snapshot = snapshot.use_extension(SVGImageExtension)
    clock = MockClock()
    app = StquantApp(DEMO_CONFIG, out_path="stquant_config.yaml", engine_cmd=FAKE_ENGINE, clock=clock)
    shots: dict[str, str] = {}
    async with app.run_test(size=SIZES[size], tooltips=True, notifications=True) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: "images" in str(app.query_one("#dataset-feedback", Static).render()))
        for step in FORM_STEPS:
            await show_step(pilot, step)
            shots[step] = await screenshot(pilot)
        await show_step(pilot, "review")
        await wait_until(pilot, lambda: app.verdict is not None)  # the real one (from the Model step), then the fixed
        app.on_verdict_ready(VerdictReady(app._checked, Verdict(0, [], [WARNING])))
        await pilot.pause()
        shots["review"] = await screenshot(pilot)

        await show_summary(pilot, RunSummary.model_validate(recorded_summary("/runs/2026_01_01")))
        shots["summary"] = await screenshot(pilot)
        no_fit = (HERE / "recorded_run_summary_no_fit.json").read_text().replace("RUN_DIR", "/runs/2026_01_01")
        await show_summary(pilot, RunSummary.model_validate_json(no_fit))
        shots["summary_that_goes_wrong"] = await screenshot(pilot)

        await run_mid_calibration(pilot, clock)
        shots["run_mid_calibration"] = await screenshot(pilot)
        if size == "80x24":
            await dataset_with_inline_errors(pilot)
            shots["dataset_with_inline_errors"] = await screenshot(pilot)
    changed = [name for name, svg in shots.items() if snapshot(name=name) != svg]
    assert not changed, f"pictures that differ from their snapshot: {changed}"
