"""The Recover screen on a recorded real recovery (replay_engine.py): opened from the Compare screen it searches
with the highlighted variant's settings and adopts them with the best step's; its look at 80x24.

Update the snapshot with `pytest tests/tui/test_recover_replay.py --snapshot-update`.
"""

from __future__ import annotations

import json
import tempfile

import pytest
import yaml
from fake_engine import recorded_summary
from replay_engine import REPLAY_ENGINE, TUTORIAL_CONFIG, recorded_recovery_lines
from textual.widgets import DataTable, Input, Select
from tui_helpers import DEMO_CONFIG, settle, wait_until

from engine.run.summary import RunSummary
from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.recover_screen import RecoverQuestion, RecoverScreen

BOARD = "STM32H747I-DISCO"
PROGRESS = ["--progress", "jsonl"]


@pytest.fixture
def replay(tmp_path, monkeypatch) -> dict:
    """The replay's folders: its run folder, where it writes its arguments and the config it was given."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPLAY_RUN_DIR", "/runs/2026_01_01")
    monkeypatch.setenv("REPLAY_ARGV", str(tmp_path / "argv.json"))
    monkeypatch.setenv("REPLAY_CONFIG", str(tmp_path / "recover_config.yaml"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return {"argv": tmp_path / "argv.json", "config": tmp_path / "recover_config.yaml"}


def recorded_steps() -> list[dict]:
    events = [json.loads(line) for line in recorded_recovery_lines("/runs/2026_01_01") if line.startswith("{")]
    return next(e["recovery"] for e in events if e["event"] == "recovery")["steps"]


async def test_recovering_a_compare_variant_searches_and_adopts_its_settings(replay, tmp_path):
    config = tmp_path / "tutorial.yaml"
    config.write_text(TUTORIAL_CONFIG)
    saved = tmp_path / "saved.yaml"
    app = StquantApp(config, out_path=saved, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        compare = app.screen
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: compare.finished is not None)
        await pilot.pause()
        variant = compare.highlighted_variant()  # the recommended one
        assert variant is not None and variant.settings

        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, RecoverQuestion))
        assert app.screen.query_one("#recover-value", Input).value == "99"  # the Compare screen's target
        assert app.screen.query_one("#recover-board", Select).value == BOARD  # the config's board
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RecoverScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.finished is not None)
        await pilot.pause()

        argv = json.loads(replay["argv"].read_text())
        assert argv[0] == "recover" and argv[2:] == ["--target-agreement", "99", "--board", BOARD, *PROGRESS]
        searched = yaml.safe_load(replay["config"].read_text())
        for key, value in variant.settings.items():  # the variant's settings, not the draft's
            section, name = key.split(".")
            assert searched[section][name] == value
        steps = recorded_steps()
        table = screen.query_one("#recover-table", DataTable)
        assert table.row_count == len(steps)
        assert [str(c) for c in table.get_row_at(5)][-2:] == [f"{steps[5]['estimated_inference_ms']:.2f}", "kept"]

        await pilot.press("a")
        await wait_until(pilot, lambda: saved.exists())
        await pilot.pause()
        assert app.step == "review" and len(app.screen_stack) == 1  # the Compare screen closed too
        for key, value in variant.settings.items():
            assert app.draft.get(key) == value
        assert app.draft.get("quantization.float_layers") == steps[5]["settings"]["float_layers"]
        assert yaml.safe_load(saved.read_text())["quantization"]["float_layers"] == ["depthwise_conv2d_1"]


def test_recover_screen_after_a_recorded_recovery(snap_compare, replay):
    async def recovered(pilot):
        await settle(pilot)
        pilot.app.adopt_settings({"benchmarking.board": BOARD})
        (await pilot.app.mount_step("summary")).show(RunSummary.model_validate(recorded_summary("/runs/2026_01_01")))
        pilot.app.step = "summary"
        await pilot.pause()
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RecoverQuestion))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RecoverScreen))
        await wait_until(pilot, lambda: pilot.app.screen.finished is not None)
        await pilot.pause()

    app = StquantApp(DEMO_CONFIG.with_name("chain_eqe_config.yaml"), out_path="saved.yaml", engine_cmd=REPLAY_ENGINE)
    assert snap_compare(app, terminal_size=(80, 24), run_before=recovered)
