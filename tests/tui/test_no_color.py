"""With NO_COLOR, on and off differ in text, not only colour: the Compare ticks, the Trust code tick, placeholders."""

from __future__ import annotations

import pytest
from replay_engine import REPLAY_ENGINE, TUTORIAL_CONFIG
from textual.widgets import Input
from tui_helpers import DEMO_CONFIG, mount_form_steps, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.widgets.tick import Tick


@pytest.fixture(autouse=True)
def _no_color(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


def screen_lines(app) -> list[str]:
    """What the terminal shows, line by line (text only: no colour can help)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def tick_line(app, label: str) -> str:
    return next(line for line in screen_lines(app) if label in line)


async def test_compare_ticks_read_differently_without_colour(tmp_path):
    config = tmp_path / "tutorial.yaml"
    config.write_text(TUTORIAL_CONFIG)
    app = StquantApp(config, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.no_color
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause()
        assert "[x] per_channel" in tick_line(app, "Granularity") and "[x] per_tensor" in tick_line(app, "Granularity")
        assert "[ ] off" in tick_line(app, "Optimize") and "[ ] on" in tick_line(app, "Optimize")
        assert "[x] uint8" in tick_line(app, "Input type") and "[ ] float" in tick_line(app, "Input type")
        app.screen.query_one("#vary-granularity-0", Tick).focus()
        await pilot.press("space")  # untick per_channel
        await pilot.pause()
        assert "[ ] per_channel" in tick_line(app, "Granularity") and "[x] per_tensor" in tick_line(app, "Granularity")
        assert "2 variant(s)" in screen_lines(app)[0]


async def test_trust_code_tick_reads_differently_without_colour():
    app = StquantApp(DEMO_CONFIG, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "model"
        await pilot.pause()
        label = "Trust code stored in this model file"
        assert f"[ ] {label}" in tick_line(app, label)
        await pilot.click("#trust-model")
        await pilot.pause()
        assert f"[x] {label}" in tick_line(app, label)
        strip = next(s for s in app.screen._compositor.render_strips() if label in s.text)
        mark = next(segment for segment in strip if segment.text == "[x]")
        assert mark.style is not None and mark.style.bold  # emphasis that survives NO_COLOR too


def placeholders(app) -> dict[str, str]:
    return {str(box.id): box.placeholder for box in app.query(Input) if box.placeholder}


async def test_placeholders_never_look_like_values(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("general: {}\n")
    app = StquantApp(empty, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await mount_form_steps(app)
        await settle(pilot)
        shown = placeholders(app)
        assert shown["general-model_path"] == "e.g. path/to/model.h5"
        assert shown["dataset-quantization_path"] == "e.g. path/to/classes/"
        assert shown["dataset-quantization_split"] == "(all) or a fraction in (0..1]"
        assert all(text.startswith(("e.g. ", "(")) for text in shown.values()), shown
        app.step = "dataset"
        await pilot.pause()
        box = app.query_one("#dataset-quantization_split", Input)
        style = box.get_component_rich_style("input--placeholder")
        assert style.italic and style.dim
        assert any("(all) or a fraction in (0..1]" in line for line in screen_lines(app))
