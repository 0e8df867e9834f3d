"""Summary: key figures fit 80x24 unscrolled and equal the recorded run's; tables page and open full-screen."""

from __future__ import annotations

import json

from fake_engine import recorded_summary
from summary_figures import assert_summary_shows
from textual.widgets import DataTable, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle

from engine.run.summary import RunSummary
from stquant_tui.app import StquantApp
from stquant_tui.steps.summary import TableScreen


async def show_recorded(pilot) -> dict:
    expected = json.loads(json.dumps(recorded_summary("/runs/2026_01_01")))
    await settle(pilot)
    (await pilot.app.mount_step("summary")).show(RunSummary.model_validate(expected))
    pilot.app.step = "summary"
    await pilot.pause()
    await pilot.pause()
    return expected


async def test_key_figures_fit_80x24_and_equal_the_run_summary_and_the_tables_page_and_open_full_screen():
    """One app: the key figures at 80x24, then the tables page without tabbing and open full screen."""
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        expected = await show_recorded(pilot)
        assert_summary_shows(app, expected)
        block = app.query_one("#summary-status", Static)
        assert block.region.y >= 1 and block.region.bottom <= 24 - 2  # below the crumbs, above nav + footer
        assert all(len(line) <= 78 for line in str(block.render()).splitlines()[:-1])  # the model path may wrap
        layers = app.query_one("#summary-layers", DataTable)
        assert [str(c.label) for c in layers.columns.values()] == ["Layer", "Op", "MACC", "Wgt B", "Act B", "Time%"]
        assert layers.virtual_size.width <= layers.scrollable_content_region.width  # every column visible

        summary = app.query_one("#step-summary")
        layers = app.query_one("#summary-layers", DataTable)
        start = (summary.scroll_y, layers.scroll_y, layers.cursor_row)
        await pilot.press("pagedown")
        await pilot.pause()
        assert (summary.scroll_y, layers.scroll_y, layers.cursor_row) != start
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, TableScreen)
        full = app.screen.query_one(DataTable)
        assert "Output" in [str(c.label) for c in full.columns.values()]
        assert full.row_count == len(summary.summary.footprint.layers)
        assert str(full.get_row_at(1)[0]) == summary.summary.footprint.layers[1].name  # full names
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TableScreen)
