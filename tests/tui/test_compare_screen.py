"""The Compare screen on a replayed real comparison (replay_engine.py): the key, the table, adopting, bad input.

The replay goes through the real child-process path (CompareProcess, its reader thread, the typed models);
the figures it replays are those of a real `stquant compare` of the tutorial model (see replay_engine.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from replay_engine import REPLAY_ENGINE, TUTORIAL_CONFIG, recorded_comparison
from textual.widgets import Checkbox, DataTable, Input, Select, Static
from tui_helpers import FAKE_ENGINE, settle, wait_until

from engine.config.schema import load_config
from engine.run.comparison import Comparison, Variant
from stquant_tui.app import StquantApp
from stquant_tui.compare_client import CompareFinished, CompareVariant
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.compare_table import CHOICES

RUN_DIR = "/runs/2026_01_01"


@pytest.fixture
def tutorial(tmp_path, monkeypatch) -> Path:
    """The tutorial config in tmp_path; replayed runs in RUN_DIR; temp files under tmp_path/tmp."""
    monkeypatch.setenv("REPLAY_RUN_DIR", RUN_DIR)
    monkeypatch.setenv("REPLAY_ARGV", str(tmp_path / "argv.json"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = tmp_path / "cfg" / "tutorial.yaml"
    path.parent.mkdir()
    path.write_text(TUTORIAL_CONFIG)
    return path


async def open_compare(pilot, step: str = "review") -> CompareScreen:
    await settle(pilot)
    pilot.app.step = step
    await pilot.pause()
    await pilot.press("ctrl+k")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
    return pilot.app.screen


async def run_compare(pilot, screen: CompareScreen) -> CompareFinished:
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: screen.finished is not None)
    await pilot.pause()
    return screen.finished


def temp_configs(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "tmp").glob(".stquant-tui-compare-*"))


def shown_keys(app) -> set[str]:
    return {key for key, active in app.active_bindings.items() if active.enabled and active.binding.show}


async def test_ctrl_k_opens_compare_on_review_and_summary_only_and_every_key_varied_fits_80_columns(tutorial):
    """One app: where ctrl+k opens Compare and which keys it offers; then, every key varied, the table fits."""
    app = StquantApp(tutorial, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "ctrl+k" not in shown_keys(app)
        await pilot.press("ctrl+k")
        assert not isinstance(app.screen, CompareScreen)
        screen = await open_compare(pilot, "review")
        assert {"ctrl+r", "escape"} <= shown_keys(app) and "a" not in shown_keys(app)  # nothing to adopt yet
        assert "ctrl+n" not in shown_keys(app)  # the wizard's keys are not offered here
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert app.step == "review" and screen.process is None
        assert "ctrl+k" in shown_keys(app)
        await open_compare(pilot, "summary")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert app.step == "summary"

        screen = await open_compare(pilot)
        for box in screen.query(Checkbox):
            box.value = True
        await pilot.pause()
        assert "24 variant(s)" in str(screen.query_one("#compare-title", Static).render())
        screen.reset(list(CHOICES), 24)
        widest = {
            "index": 0,
            "name": "",
            "status": "ok",
            "accuracy": 100.0,
            "agreement": 100.0,
            "weights_flash_kib": 4096.25,
            "activation_ram_kib": 1234.5,
            "estimated_inference_ms": 1234.56,
            "settings": {
                "quantization.granularity": "per_channel",
                "quantization.optimize": True,
                "quantization.quantization_input_type": "uint8",
                "quantization.quantizer": "TFlite_converter",
            },
        }
        for index in range(24):
            screen.post_message(CompareVariant(Variant(**{**widest, "index": index})))
        await pilot.pause()
        starred = Comparison(run_dir="/runs/x", model="m.h5", varied={}, target_agreement=99.0, recommended=23)
        screen.post_message(CompareFinished(0, starred, None))
        await pilot.pause()
        table = screen.query_one("#compare-table", DataTable)
        assert table.row_count == 24 and table.show_vertical_scrollbar and table.get_row_at(23)[0] == "23★"
        assert table.virtual_size.width <= table.scrollable_content_region.width <= 80
        assert not table.show_horizontal_scrollbar


async def test_replayed_comparison_fills_the_table_row_by_row(tutorial, tmp_path):
    seen: list = []
    app = StquantApp(tutorial, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await open_compare(pilot)
        assert "4 variant(s)" in str(screen.query_one("#compare-title", Static).render())  # the default choice
        assert screen.query_one("#compare-board", Select).value == "STM32H747I-DISCO"  # benchmarking.board
        finished = await run_compare(pilot, screen)
        argv = json.loads((tmp_path / "argv.json").read_text())
        assert argv[0] == "compare" and Path(argv[1]).parent == tmp_path / "tmp"
        assert argv[2:] == [
            "--vary",
            "quantization.granularity=per_channel,per_tensor",
            "--vary",
            "quantization.quantization_input_type=uint8,int8",
            "--progress",
            "jsonl",
            "--target-agreement",
            "99",
            "--board",
            "STM32H747I-DISCO",
        ]
        assert not temp_configs(tmp_path)  # the draft's temp copy is removed
        assert finished.exit_code == 0 and finished.comparison.status == "ok"
        unique = {id(m): m for m in seen}.values()  # each message once (it bubbles from the screen to the app)
        order = [type(m).__name__ for m in unique if isinstance(m, (CompareVariant, CompareFinished))]
        assert order == ["CompareVariant"] * 4 + ["CompareFinished"]
        table = screen.query_one("#compare-table", DataTable)
        assert [str(c.label) for c in table.columns.values()] == [
            "#",
            "gran.",
            "input",
            "acc %",
            "agr %",
            "flash",
            "RAM",
            "ms",
        ]
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        recorded = recorded_comparison(RUN_DIR)
        assert rows[0][:3] == ["0★", "channel", "uint8"] and rows[3][:3] == ["3", "tensor", "int8"]
        for row, variant in zip(rows, recorded["variants"], strict=True):
            assert [float(cell) for cell in row[3:]] == [
                variant[k]
                for k in ("accuracy", "agreement", "weights_flash_kib", "activation_ram_kib", "estimated_inference_ms")
            ]
        assert table.cursor_row == recorded["recommended"] == 0 and app.focused is table
        info = str(screen.query_one("#compare-info", Static).render())
        assert "agreement ≥ 98 %" in info
        assert "180 held-out images (float 96.67 %) · 120 calibration · on STM32H747I-DISCO" in info
        assert RUN_DIR in str(screen.query_one("#compare-stage", Static).render())
        detail = str(screen.query_one("#compare-detail", Static).render())
        assert detail == "0: granularity=per_channel, input_type=uint8 · ranges cached · 1.6 s"
        assert "a" in shown_keys(app)

        screen.query_one("#compare-board", Select).clear()  # no board, though the config names one
        await pilot.pause()
        await run_compare(pilot, screen)
        argv = json.loads((tmp_path / "argv.json").read_text())
        assert "benchmarking.board=null" in argv and "--board" not in argv
        assert table.row_count == 4  # the table starts again


async def test_adopting_writes_the_variant_into_the_draft_and_save_keeps_it(tutorial, tmp_path):
    app = StquantApp(tutorial, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.mount_step("quantization")  # its form follows the adopted keys (a step mounted later loads them)
        screen = await open_compare(pilot)
        await run_compare(pilot, screen)
        await pilot.press("down", "down", "down")  # variant 3: per_tensor, int8 input
        await pilot.press("a")
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        await pilot.pause()
        assert app.step == "review"
        assert app.draft.get("quantization.granularity") == "per_tensor"
        assert app.draft.get("quantization.quantization_input_type") == "int8"
        text = "\n".join(str(n.message) for n in app._notifications)
        assert "granularity: (not set) → per_tensor" in text and "quantization_input_type: uint8 → int8" in text
        yaml_text = app.query_one("#review-yaml").text
        assert "granularity: per_tensor" in yaml_text and "quantization_input_type: int8" in yaml_text
        assert app.query_one("#quantization-granularity", Select).value == "per_tensor"  # the form follows
        app.step = "quantization"
        await pilot.pause()
        await pilot.press("ctrl+n")  # leaving the step re-reads its fields: they must not undo the adoption
        await wait_until(pilot, lambda: app.step == "review")
        assert app.draft.get("quantization.quantization_input_type") == "int8"
        target = tmp_path / "adopted.yaml"
        app.query_one("#review-save_path", Input).value = str(target)
        await pilot.press("ctrl+o")
        await wait_until(pilot, target.exists)
        saved = load_config(target)
        assert (saved.quantization.granularity, saved.quantization.quantization_input_type) == ("per_tensor", "int8")
        assert saved.dataset.quantization_split == 0.4 and saved.benchmarking.board == "STM32H747I-DISCO"


async def test_enter_adopts_from_the_summary_and_returns_to_review(tutorial):
    app = StquantApp(tutorial, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(pilot, "summary")
        await run_compare(pilot, screen)
        await pilot.press("down", "enter")  # variant 1: per_channel, int8 input
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert app.step == "review"
        assert app.draft.get("quantization.quantization_input_type") == "int8"
        assert app.draft.get("quantization.granularity") == "per_channel"


def untick_every_value(screen: CompareScreen) -> None:
    for box in screen.query(Checkbox):
        box.value = False


def target_out_of_range(screen: CompareScreen) -> None:
    screen.query_one("#compare-target", Input).value = "150"


def invalid_draft(screen: CompareScreen) -> None:
    screen.app.draft.set("dataset.quantization_split", 2)


BAD_CHOICES = [
    (untick_every_value, "Tick at least one value"),
    (target_out_of_range, "Target agreement: a number"),
    (invalid_draft, "dataset.quantization_split"),
]


async def test_bad_choices_are_refused_naming_what_to_fix_and_an_engine_failure_is_said_and_the_screen_stays(
    tutorial, tmp_path
):
    """One app: each bad choice in turn (the one before undone) is refused with its own message, nothing started;
    then a comparison the engine fails is said and the screen stays, its options usable again."""
    app = StquantApp(tutorial, engine_cmd=FAKE_ENGINE)  # it knows no `compare`: exit 2, one line on stderr
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(pilot)
        ticked = {box.id: box.value for box in screen.query(Checkbox)}
        target = screen.query_one("#compare-target", Input).value
        split = app.draft.get("dataset.quantization_split")
        for setup, message in BAD_CHOICES:
            app.clear_notifications()
            setup(screen)
            await pilot.pause()
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert screen.process is None and not screen.running and not temp_configs(tmp_path), setup.__name__
            assert any(message in str(n.message) for n in app._notifications), (setup.__name__, app._notifications)
            for box in screen.query(Checkbox):
                box.value = ticked[box.id]
            screen.query_one("#compare-target", Input).value = target
            app.draft.set("dataset.quantization_split", split)
            await pilot.pause()

        finished = await run_compare(pilot, screen)
        assert (finished.exit_code, finished.error, finished.comparison) == (2, "unknown command compare", None)
        assert str(screen.query_one("#compare-stage", Static).render()) == "Failed (exit 2): unknown command compare"
        assert not temp_configs(tmp_path) and isinstance(app.screen, CompareScreen)
        assert not screen.query_one("#compare-target", Input).disabled  # options usable again
