"""The Compare screen at 80x24 after a recorded real comparison (replay_engine.py) of the tutorial model.

Update with `pytest tests/tui/test_compare_snapshot.py --snapshot-update`.
"""

from __future__ import annotations

from replay_engine import REPLAY_ENGINE, TUTORIAL_CONFIG
from tui_helpers import settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen


def test_compare_screen_after_a_recorded_comparison(snap_compare, tmp_path, monkeypatch):
    monkeypatch.setenv("REPLAY_RUN_DIR", "/runs/2026_01_01")
    config = tmp_path / "tutorial.yaml"
    config.write_text(TUTORIAL_CONFIG)

    async def compared(pilot):
        await settle(pilot)
        pilot.app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: pilot.app.screen.finished is not None)
        await pilot.pause()

    app = StquantApp(config, out_path="stquant_config.yaml", engine_cmd=REPLAY_ENGINE)
    assert snap_compare(app, terminal_size=(80, 24), run_before=compared)
