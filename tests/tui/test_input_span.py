"""The Preprocessing step says what the inputs will span and warns when that is not what image models take."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle

from stquant_tui.app import StquantApp
from stquant_tui.steps.preprocessing import input_range


async def retype(pilot, selector: str, text: str) -> None:
    """Focus an input, clear it with ctrl+u and type like a user."""
    pilot.app.query_one(selector, Input).focus()
    await pilot.pause()
    await pilot.press("end", "ctrl+u", *text)
    await pilot.pause()


async def test_scale_255_shows_the_span_and_a_warning_on_screen():
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "preprocessing"
        await pilot.pause()
        preview = app.query_one("#preprocessing-preview", Static)
        await retype(pilot, "#preprocessing-rescaling-scale", "255")
        await retype(pilot, "#preprocessing-rescaling-offset", "0")
        assert app.draft.get("preprocessing.rescaling.scale") == 255
        lines = str(preview.render()).splitlines()
        assert lines[0] == "Input range: inputs span 0 .. 65,025 (pixels 0..255 × scale + offset)"
        assert lines[1].startswith("⚠ unusual: image models take 0..1") and preview.has_class("-warn")
        assert preview.region.bottom <= 24 - 2  # visible on the first screen, above the nav bar and footer
        await retype(pilot, "#preprocessing-rescaling-scale", "1/127.5")
        await retype(pilot, "#preprocessing-rescaling-offset", "-1")
        assert str(preview.render()) == "Input range: inputs span -1 .. 1 (pixels 0..255 × scale + offset)"
        assert not preview.has_class("-warn")


@pytest.mark.parametrize(
    ("scale", "offset", "span", "warned"),
    [
        ("1/255", 0, "0 .. 1", False),
        ("1/127.5", -1, "-1 .. 1", False),
        (1, 0, "0 .. 255", False),
        (1, -128, "-128 .. 127", False),
        ("1/255", -0.5, "-0.5 .. 0.5", True),
        (255, 0, "0 .. 65,025", True),
        (-1 / 255, 1, "0 .. 1", False),
        ("2/255", 0, "0 .. 2", True),
    ],
)
def test_span_and_warning(scale, offset, span: str, warned: bool) -> None:
    text = input_range(scale, offset)
    assert f"inputs span {span} (" in text and ("⚠" in text) == warned
