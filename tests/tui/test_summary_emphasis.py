"""The Summary flags trouble in a way NO_COLOR keeps (✗/▼ and bold reverse), says what a board lacks, shows
per-class accuracy and collapses many warnings; all against a real run of a zoo config that goes wrong:
per-tensor on the flowers MobileNet (a large drop), on a board whose RAM is too small, with the services' extra keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from summary_figures import assert_summary_shows
from textual.widgets import DataTable, Static
from tui_helpers import settle, wait_until
from zoo_config import zoo_user_config

from stquant_tui.app import StquantApp

pytestmark = pytest.mark.slow

EDITS = (
    ("board: STM32H747I-DISCO\n", "board: NUCLEO-F401RE\n"),
    ("granularity: per_channel ", "granularity: per_tensor "),
    ("quantization_split:     # Optional", "quantization_split: 0.1"),
)


def styled(static: Static, text: str):
    """The style of the span that shows `text` in a Static's rendered content."""
    content = static.render()
    start = str(content).index(text)
    spans = [span for span in content.spans if span.start <= start and span.end >= start + len(text)]
    assert spans, text
    return static.app.console.get_style(str(spans[-1].style)) if isinstance(spans[-1].style, str) else spans[-1].style


async def test_a_real_run_that_goes_wrong_is_flagged(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    config = zoo_user_config(tmp_path, "chain_eqeb", EDITS)
    monkeypatch.chdir(config.parent)  # hydra.run.dir and the MLflow store: under tmp_path
    app = StquantApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.step == "run", timeout=60)  # once validate passed (it runs on Review)
        await wait_until(pilot, lambda: not app.running, timeout=300)
        assert app.last_run is not None and app.last_run.exit_code == 0, app.last_run
        await wait_until(pilot, lambda: app.step == "summary")
        written = json.loads((Path(app.last_run.run_dir) / "run_summary.json").read_text())
        fit, accuracy = written["footprint"]["board_fit"], written["accuracy"]
        assert fit["weights_fit"] and not fit["activations_fit"] and accuracy["difference"] < -1  # what goes wrong
        assert len(written["warnings"]) > 2
        assert_summary_shows(app, written)

        block = app.query_one("#summary-status", Static)
        text = str(block.render())
        needs = fit["ram_kib"] - fit["ram_headroom_kib"]
        assert f"\nBoard RAM       ✗ needs {needs:,.1f} KiB, the board has {fit['ram_kib']}\n" in text
        assert f"(▼ {accuracy['difference']:+.1f} pt)" in text
        for flagged in ("✗ does NOT fit", "✗ needs", "▼"):
            style = styled(block, flagged)
            assert style.bold and style.reverse, flagged  # emphasis that survives NO_COLOR
        assert text.splitlines()[0].startswith("✓ ok") and styled(block, "✓ ok").bold

        classes = app.query_one("#summary-classes", DataTable)
        worst = [str(cell) for cell in classes.get_row_at(0)]
        assert worst[3].startswith("▼")

        assert block.region.bottom <= 24 - 2  # the key figures, warnings collapsed, fit the first screen
        await pilot.press("w")
        await pilot.pause()
        shown = [line for line in str(block.render()).splitlines() if line.startswith("⚠")]
        assert shown == [f"⚠ {w['stage']}: {w['message']}" for w in written["warnings"]]
        await pilot.press("w")
        await pilot.pause()
        assert [line for line in str(block.render()).splitlines() if line.startswith("⚠")] == [
            f"⚠ {len(written['warnings'])} warnings · w shows all {len(written['warnings'])}"
        ]
