"""The Model step's "Trust code stored in this model file" tick: wizard state passed as --trust-model (the tick
letting the real engine inspect a model with stored code: test_live_checks)."""

from __future__ import annotations

from textual.widgets import Checkbox, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle, wait_until

from stquant_tui.app import StquantApp


async def test_tick_reaches_the_run_but_not_the_yaml(tmp_path, fake_engine):
    app = StquantApp(DEMO_CONFIG, engine_cmd=fake_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "model"
        info = (await app.mount_step("model")).query_one("#model-info", Static)
        await wait_until(pilot, lambda: "Output width" in str(info.render()))  # its first inspect has ended
        app.query_one("#trust-model", Checkbox).value = True
        await settle(pilot)
        assert "trust" not in app.draft.yaml_text()
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.process is not None)
        assert app.process.argv[-1] == "--trust-model" and app.process.argv[: len(FAKE_ENGINE)] == FAKE_ENGINE
        await wait_until(pilot, lambda: not app.running)
