"""A real `stquant compare` (the real `python -m engine`) of the bundled demo through the Compare screen:
every cell equals the run's comparison.json; cancelling or quitting stops the child and leaves no temp file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable, Select, Static
from tui_helpers import DEMO_CONFIG, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.compare_client import CompareFinished, CompareVariant
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.messages import RunStage
from stquant_tui.widgets.dialogs import ConfirmScreen

pytestmark = pytest.mark.slow

SHOWN = {"per_channel": "channel", "per_tensor": "tensor"}
FIGURES = ("accuracy", "agreement", "weights_flash_kib", "activation_ram_kib", "estimated_inference_ms")


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """Comparison folders (hydra.run.dir is relative), the statistics cache and temp files under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


async def open_compare(pilot) -> CompareScreen:
    await settle(pilot)
    pilot.app.step = "review"
    await pilot.pause()
    await pilot.press("ctrl+k")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
    return pilot.app.screen


def cell(value) -> str:
    return "–" if value is None else f"{value:.2f}"


async def test_real_compare_of_the_demo_shows_what_comparison_json_says(sandbox):
    seen: list = []
    app = StquantApp(DEMO_CONFIG.with_name("chain_eqe_config.yaml"))  # measured on its test_path
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await open_compare(pilot)
        for box in screen.query(Checkbox):  # granularity only: 2 variants
            box.value = box.id.startswith("vary-granularity")
        screen.query_one("#compare-board", Select).value = "STM32H747I-DISCO"
        await pilot.pause()
        assert "2 variant(s)" in str(screen.query_one("#compare-title", Static).render())
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.finished is not None, timeout=240)
        await pilot.pause()
        finished = screen.finished
        assert finished.exit_code == 0, finished.error
        run_dir = Path(finished.comparison.run_dir)
        assert run_dir.parent == sandbox / "experiments_outputs"
        written = json.loads((run_dir / "comparison.json").read_text())
        assert written["status"] == "ok" and len(written["variants"]) == 2
        assert written["varied"] == {"quantization.granularity": ["per_channel", "per_tensor"]}
        unique = {id(m): m for m in seen}.values()
        order = [type(m).__name__ for m in unique if isinstance(m, (CompareVariant, CompareFinished))]
        assert order == ["CompareVariant", "CompareVariant", "CompareFinished"]  # a row per variant event

        table = screen.query_one("#compare-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        expected = []
        for variant in written["variants"]:
            star = "★" if variant["index"] == written["recommended"] else ""
            expected.append(
                [
                    f"{variant['index']}{star}",
                    SHOWN[variant["settings"]["quantization.granularity"]],
                    *(cell(variant[name]) for name in FIGURES),
                ]
            )
        assert rows == expected
        assert all(v["estimated_inference_ms"] and v["agreement"] for v in written["variants"])
        info = str(screen.query_one("#compare-info", Static).render())
        assert written["evaluation_set"] == "test_set"
        assert (
            f"{written['evaluation_images']} test_path images (float {written['float_accuracy']:.2f} %) · "
            f"{written['calibration_images']} calibration · on {written['board']}"
        ) in info
        assert written["recommended"] is not None and f"agreement ≥ {written['target_agreement']:g} %" in info
        assert not list((sandbox / "tmp").glob(".stquant-tui-compare-*"))
        await pilot.press("a")  # a measured variant is adopted without a question
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert not isinstance(app.screen, ConfirmScreen)
        recommended = written["variants"][written["recommended"]]["settings"]["quantization.granularity"]
        assert app.draft.get("quantization.granularity") == recommended


async def test_cancelling_or_quitting_a_real_compare_stops_the_child_and_leaves_no_temp_file(sandbox):
    """One app: esc (confirmed) stops the child with exit 130 and the screen stays with what was measured; a second
    comparison, quit mid-way, stops its child too; no temp file is left."""
    seen: list = []
    app = StquantApp(DEMO_CONFIG)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await open_compare(pilot)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: any(isinstance(m, RunStage) and m.name == "load_model" for m in seen), 60)
        assert list((sandbox / "tmp").glob(".stquant-tui-compare-*"))  # the draft's copy, while it runs
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.finished is not None, timeout=60)
        await pilot.pause()
        assert screen.finished.exit_code == 130
        assert screen.process.process.poll() == 130
        assert not list((sandbox / "tmp").glob(".stquant-tui-compare-*"))
        comparison = screen.finished.comparison
        written = json.loads((Path(comparison.run_dir) / "comparison.json").read_text())
        assert written["status"] == "interrupted" and written["variants"] == []
        assert str(screen.query_one("#compare-stage", Static).render()) == "Stopped: 0 variant(s) measured."
        assert isinstance(app.screen, CompareScreen)  # esc asked; the screen stays with what was measured

        cancelled = screen.process.process
        seen.clear()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: any(isinstance(m, RunStage) for m in seen), 60)
        child = screen.process.process
        assert child is not cancelled
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)  # quit without a question
    assert child.poll() is not None
    assert not list((sandbox / "tmp").glob(".stquant-tui-compare-*"))
