"""A real quantization of the bundled demo from the Run step (the real `python -m engine`), to the Summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from stquant_tui.app import StquantApp
from tui_helpers import DEMO_CONFIG, settle, wait_until

pytestmark = pytest.mark.slow


async def test_real_quantization_of_the_demo_reaches_the_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run folder (hydra.run.dir) lands under tmp_path
    app = StquantApp(DEMO_CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.step == "run")
        await wait_until(pilot, lambda: not app.running, timeout=240)
        assert app.last_run is not None and app.last_run.exit_code == 0, app.last_run
        assert app.step == "summary"
        model = app.query_one("#step-summary").summary["quantized_model"]
        assert Path(model).is_file() and str(tmp_path) in model
        assert model in str(app.query_one("#summary-status", Static).render())
        assert "calibration" in "\n".join(app.query_one("#step-run").lines)
        footprint = app.query_one("#step-summary").summary["footprint"]
        compare = app.query_one("#summary-compare", DataTable)
        cells = [str(cell) for row in range(compare.row_count) for cell in compare.get_row_at(row)]
        assert "Weights flash (KiB)" in cells and f"{footprint['weights_flash_kib']:.1f}" in cells
        assert app.query_one("#summary-layers", DataTable).row_count > 5
