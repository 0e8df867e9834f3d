"""`stquant recover` from the wizard, against the real engine on the bundled demo: the Summary's ctrl+g asks the
target, the Recover screen shows one row per step (equal to recovery.json), Adopt writes the best step's keys
into the saved YAML (which the engine loads), esc stops the search (exit 130, recovery.json interrupted)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from fake_engine import recorded_summary
from textual.widgets import DataTable, Input, Static
from tui_helpers import DEMO_CONFIG, settle, stop_with_escape, wait_until

from engine.config.schema import load_config
from engine.run.summary import RunSummary
from stquant_tui.app import StquantApp
from stquant_tui.messages import RunStage
from stquant_tui.recover_client import RecoverFinished, RecoverStep
from stquant_tui.recover_screen import RecoverQuestion, RecoverScreen
from stquant_tui.widgets.dialogs import ConfirmScreen

pytestmark = pytest.mark.slow

CHAIN_EQE = DEMO_CONFIG.with_name("chain_eqe_config.yaml")  # evaluates on its test_path: the Summary has accuracy


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """Run folders (hydra.run.dir is relative), the statistics cache and temp files under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def expected_rows(recovery: dict) -> list[list[str]]:
    """recovery.json's steps as the table should show them (no board: no ms column)."""
    rows = []
    for step in recovery["steps"]:
        result = (
            "✓ target"
            if step["meets_target"]
            else "✗ budget"
            if not step["within_budget"]
            else "kept"
            if step["kept"]
            else "–"
        )
        figures = ("agreement", "accuracy", "drop", "activation_ram_kib", "weights_flash_kib")
        rows.append(
            [
                f"{step['index']}{'★' if step['index'] == recovery['best'] else ''}",
                step["remedy"] if len(step["remedy"]) <= 22 else "…" + step["remedy"][-21:],
                *(cell(step[name]) for name in figures),
                result,
            ]
        )
    return rows


async def start_recovery(pilot, target: str | None = None) -> RecoverScreen:
    """ctrl+g on the Summary, the target typed (or the one proposed), Enter."""
    await pilot.press("ctrl+g")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, RecoverQuestion))
    if target is not None:
        pilot.app.screen.query_one("#recover-value", Input).value = target
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, RecoverScreen))
    return pilot.app.screen


async def refused_then_stopped(pilot, sandbox: Path, seen: list) -> None:
    """A target the engine refuses is its one-line error and nothing to adopt; esc during a search stops the engine
    with exit 130 (recovery.json interrupted, the rows measured stay); no temp file is left; back on the Summary."""
    app = pilot.app
    await pilot.press("ctrl+g")
    await wait_until(pilot, lambda: isinstance(app.screen, RecoverQuestion))
    assert app.screen.query_one("#recover-value", Input).value == "100"  # the agreement shown is >= 99
    app.screen.query_one("#recover-value", Input).value = "150"
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, RecoverScreen))
    screen = app.screen
    await wait_until(pilot, lambda: screen.finished is not None, timeout=60)
    await pilot.pause()
    assert screen.finished.exit_code == 2 and screen.finished.recovery is None
    outcome = str(screen.query_one("#recover-outcome", Static).render())
    assert outcome == "✗ Failed (exit 2): --target-agreement 150.0: a percentage from 0 to 100"
    assert screen.check_action("adopt", ()) is None  # shown greyed: nothing to adopt
    assert not list((sandbox / "tmp").glob(".stquant-tui-recover-*"))
    await pilot.press("escape")
    await wait_until(pilot, lambda: not isinstance(app.screen, RecoverScreen))

    seen.clear()
    screen = await start_recovery(pilot, "100")
    await wait_until(pilot, lambda: any(isinstance(m, RecoverStep) for m in seen), timeout=120)
    await stop_with_escape(pilot, screen)
    written = json.loads((Path(screen.finished.recovery.run_dir) / "recovery.json").read_text())
    assert written["status"] == "interrupted"
    assert len(written["steps"]) == screen.query_one("#recover-table", DataTable).row_count >= 1
    outcome = str(screen.query_one("#recover-outcome", Static).render())
    assert outcome.startswith(f"Stopped: {len(written['steps'])} step(s) measured")
    assert not list((sandbox / "tmp").glob(".stquant-tui-recover-*"))
    assert isinstance(app.screen, RecoverScreen)  # the rows measured stay; esc now goes back
    await pilot.press("escape")
    await wait_until(pilot, lambda: not isinstance(app.screen, RecoverScreen))
    assert app.step == "summary"


async def test_recovery_from_the_summary_refused_stopped_then_searched_adopted_and_quit(sandbox):
    """One app on the per-tensor draft of the demo's chain_eqe config, on a recorded real run's Summary (it only sets
    the target the Recover screen proposes; test_real_run checks a live run's Summary): a refused target, a search
    stopped by esc, then a whole real search whose rows equal recovery.json and whose best step Adopt saves (the
    engine loads it), then ctrl+q mid-search with nothing unsaved quits at once and stops the engine."""
    seen: list = []
    saved = sandbox / "adopted.yaml"
    app = StquantApp(CHAIN_EQE, out_path=saved)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        app.adopt_settings({"quantization.granularity": "per_tensor"})  # a float layer then helps on the demo
        (await app.mount_step("summary")).show(RunSummary.model_validate(recorded_summary(sandbox / "run")))
        app.step = "summary"
        await pilot.pause()
        agreement = app.step_widget("summary").summary.accuracy.agreement
        assert agreement is not None and agreement >= 99  # so the target proposed is 100
        await refused_then_stopped(pilot, sandbox, seen)

        seen.clear()
        screen = await start_recovery(pilot)  # the target proposed
        await wait_until(pilot, lambda: screen.finished is not None, timeout=240)
        await pilot.pause()

        finished = screen.finished
        assert finished.exit_code == 1, finished.error  # 100 % is out of reach on the demo: the best is kept
        run_dir = Path(finished.recovery.run_dir)
        assert run_dir.parent == sandbox / "experiments_outputs"
        written = json.loads((run_dir / "recovery.json").read_text())
        assert written["status"] == "not_met" and written["target"] == {"kind": "agreement", "value": 100.0}
        assert len(written["steps"]) >= 5  # as configured, 2 other range methods, bias correction, float layers
        unique = {id(m): m for m in seen}.values()
        order = [type(m).__name__ for m in unique if isinstance(m, (RecoverStep, RecoverFinished))]
        assert order == ["RecoverStep"] * len(written["steps"]) + ["RecoverFinished"]  # a row per step event
        table = screen.query_one("#recover-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows == expected_rows(written)
        outcome = str(screen.query_one("#recover-outcome", Static).render())
        assert outcome.startswith(f"✗ {written['outcome']}\na adopts step {written['best']}: ")
        assert not list((sandbox / "tmp").glob(".stquant-tui-recover-*"))

        best = next(step for step in written["steps"] if step["index"] == written["best"])
        assert best["settings"]["float_layers"]  # the demo's best keeps a layer in float
        await pilot.press("a")
        await wait_until(pilot, lambda: saved.exists())
        await pilot.pause()
        assert app.step == "review" and not isinstance(app.screen, (RecoverScreen, ConfirmScreen))
        review_line = str(app.query_one("#review-float-layers", Static).render())
        assert ", ".join(best["settings"]["float_layers"]) in review_line

        assert not app.draft.modified  # adopted and saved: ctrl+q quits without a question, mid-search too
        app.step = "summary"
        await pilot.pause()
        seen.clear()
        screen = await start_recovery(pilot, "100")
        await wait_until(pilot, lambda: any(isinstance(m, RunStage) for m in seen), timeout=60)
        child = screen.process.process
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)
    assert child.poll() is not None
    assert not list((sandbox / "tmp").glob(".stquant-tui-recover-*"))

    config = load_config(saved)
    assert config.quantization.granularity == "per_tensor"
    assert config.quantization.float_layers == best["settings"]["float_layers"]
    assert config.quantization.calibration_method == best["settings"]["calibration_method"]
    assert config.quantization.bias_correction == best["settings"]["bias_correction"]
    engine_config = load_config(run_dir / "config.yaml")  # what `stquant run` re-runs the best step with
    assert config.quantization.model_dump(exclude={"export_dir"}) == engine_config.quantization.model_dump(
        exclude={"export_dir"}
    )
