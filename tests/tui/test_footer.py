"""The key bar shows what Textual's own Footer would, and is rebuilt only when that changes."""

from __future__ import annotations

from textual.widgets._footer import FooterKey
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle

from stquant_tui.app import StquantApp


def expected(app: StquantApp) -> list[tuple[str, str, bool]]:
    """(key, description, enabled) of every binding the screen shows, as Textual's Footer composes them."""
    return [
        (binding.key, binding.description, enabled)
        for _node, binding, enabled, _tooltip in app.screen.active_bindings.values()
        if binding.show
    ]


def shown(app: StquantApp) -> list[tuple[str, str, bool]]:
    return [(key.key, key.description, not key.disabled) for key in app.screen.query(FooterKey)]


async def test_the_key_bar_follows_focus_and_is_rebuilt_only_when_its_keys_change(tmp_path):
    source = tmp_path / "config.yaml"
    source.write_text(DEMO_CONFIG.read_text())
    app = StquantApp(source, engine_cmd=FAKE_ENGINE)
    kept = rebuilt = 0
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        for _ in range(12):  # through the Dataset step's fields: paths (Browse on), names, numbers
            before = [id(key) for key in app.screen.query(FooterKey)]
            keys_before = shown(app)
            await pilot.press("tab")
            await settle(pilot)
            assert shown(app) == expected(app), app.focused
            if expected(app) == keys_before:
                kept += [id(key) for key in app.screen.query(FooterKey)] == before
            else:
                rebuilt += 1
    assert kept and rebuilt  # both cases were seen: same keys kept their widgets, changed keys were shown
