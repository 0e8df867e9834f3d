"""Many warnings are collapsed to the first two and a count in Review; `w` shows them all (the Summary:
test_summary_emphasis.py). A real zoo config (the services' user_config.yaml, made runnable) checked by the real
`stquant validate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Static
from tui_helpers import ROOT, settle, wait_until
from zoo_config import zoo_user_config

from stquant_tui.app import StquantApp
from stquant_tui.engine_client import default_engine_cmd


@pytest.fixture
def zoo_config(tmp_path: Path) -> Path:
    return zoo_user_config(tmp_path)


def validate_warnings(config: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(config)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [line.removeprefix("stquant: warning: ") for line in done.stderr.splitlines() if ": warning: " in line]


def shown_keys(app) -> set[str]:
    return {key for key, active in app.active_bindings.items() if active.enabled and active.binding.show}


async def test_review_collapses_validates_warnings_and_w_shows_them_all(zoo_config):
    warnings = validate_warnings(zoo_config)
    assert len(warnings) > 3  # the services' file carries many keys stquant does not use
    app = StquantApp(zoo_config, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None, timeout=90)
        await pilot.pause()
        assert app.verdict.warnings == warnings
        status = app.query_one("#review-status", Static)
        lines = str(status.render()).splitlines()
        assert lines[0].startswith("✓ stquant validate: ok")
        assert lines[1:] == [
            f"⚠ {warnings[0]}",
            f"⚠ {warnings[1]}",
            f"⚠ +{len(warnings) - 2} more warnings · w shows all {len(warnings)}",
        ]
        assert "w" in shown_keys(app)
        await pilot.press("w")
        await pilot.pause()
        lines = str(status.render()).splitlines()
        assert lines[1:-1] == [f"⚠ {w}" for w in warnings]
        assert lines[-1] == f"  ({len(warnings)} warnings · w shows only 2)"
        await pilot.press("w")
        await pilot.pause()
        assert len(str(status.render()).splitlines()) == 4
