"""An idle Compare screen draws nothing by itself: no progress bar animates until a comparison starts."""

from __future__ import annotations

from replay_engine import REPLAY_ENGINE, TUTORIAL_CONFIG
from textual.widgets import ProgressBar
from textual.widgets._progress_bar import Bar
from tui_helpers import settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen


async def test_idle_compare_screen_renders_no_bar_frames(tmp_path, monkeypatch):
    frames: list[int] = []
    render = Bar.render
    monkeypatch.setattr(Bar, "render", lambda self: frames.append(1) or render(self))
    config = tmp_path / "tutorial.yaml"
    config.write_text(TUTORIAL_CONFIG)
    app = StquantApp(config, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause(0.2)
        frames.clear()
        await pilot.pause(1.0)  # idle: an indeterminate bar would draw about 15 frames a second
        assert frames == []
        assert not app.screen.query_one("#compare-progress", ProgressBar).display
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.screen.finished is not None)
        await pilot.pause()
        progress = app.screen.query_one("#compare-progress", ProgressBar)
        assert progress.total == 4 and progress.progress == 4
        frames.clear()
        await pilot.pause(1.0)  # done: the bar (full, or hidden) stays still
        assert frames == []
