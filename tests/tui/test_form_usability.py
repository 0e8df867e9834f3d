"""Readable at 80x24, better at 120x40: widths, focus, help from the schema, choices, blocked Next."""

from __future__ import annotations

import html

from textual.widgets import Input, Select, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, ZOO_CONFIG, mount_form_steps, settle, wait_until

from engine.config import schema
from engine.config.schema import RUNNABLE_MODES
from engine.footprint.boards import BOARDS
from stquant_tui.app import StquantApp, default_save_path
from stquant_tui.widgets.dialogs import PathPickerScreen
from stquant_tui.widgets.fields import FieldRow


def screenshot(app: StquantApp) -> str:
    """The screen's text as the SVG screenshot shows it."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


async def test_form_keeps_its_80_column_width_and_the_yaml_pane_takes_the_rest():
    """One app, its terminal resized (a fresh app at 120 and 140 columns: test_snapshots, test_pickers_and_wide)."""
    widths = {}
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        for size in ((80, 24), (120, 40), (200, 50)):
            await pilot.resize_terminal(*size)
            await settle(pilot)
            side = app.query_one("#side")
            widths[size[0]] = (
                app.query_one("#dataset-quantization_path", Input).region.width,
                side.region.width if side.display else 0,
            )
    assert widths[80][1] == 0 and widths[80][0] >= 50
    assert widths[120][0] == widths[80][0] and 30 <= widths[120][1] <= 40  # the pane: what is left
    assert widths[200][0] > widths[80][0] and widths[200][1] <= 72


async def test_every_field_has_a_help_line_and_the_focused_one_shows_its_schema_help_and_is_marked():
    """One app on the demo: every field of the form steps has a help line of at most two lines at 80 columns;
    the focused field shows its schema help and is marked."""
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await mount_form_steps(app)
        await settle(pilot)
        assert all(row.help for row in app.query(FieldRow)), [row.key for row in app.query(FieldRow) if not row.help]
        too_long = [row.key for row in app.query(FieldRow) if len(f"{row.label}: {row.help}") > 150]
        assert not too_long  # two lines at 80 columns

        app.step = "quantization"
        await settle(pilot)
        for key in (
            "quantization.granularity",
            "quantization.optimize",
            "quantization.bias_correction",
            "quantization.quantization_input_type",
            "quantization.quantization_output_type",
        ):
            row = app.query_one(f"#row-{key.replace('.', '-')}", FieldRow)
            row.editor.focus()
            await pilot.pause()
            description = schema.Quantization.model_fields[key.split(".")[1]].description
            assert description and description in str(app.query_one("#field-help", Static).render())
            assert "Default: " in str(app.query_one("#field-help", Static).render())
            assert row.has_pseudo_class("focus-within")
            label = row.query_one(".field-label")
            assert label.styles.text_style.reverse and label.styles.text_style.bold
            assert [r.key for r in app.query(FieldRow) if r.has_pseudo_class("focus-within")] == [key]


async def test_operation_mode_offers_only_runnable_modes_and_flags_a_loaded_other_one(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(DEMO_CONFIG.read_text().replace("operation_mode: quantization", "operation_mode: chain_tbqeb"))
    app = StquantApp(config, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.mount_step("quantization")
        await settle(pilot)
        select = app.query_one("#operation_mode", Select)
        options = [str(prompt) for prompt, _ in select._options if _ is not Select.NULL]
        assert options == [*RUNNABLE_MODES, "chain_tbqeb (not run by stquant)"]
        assert select.value == "chain_tbqeb"


async def test_board_and_name_fields_a_blocked_next_and_the_picker_on_one_app():
    """One app on the demo: the board is a select of the known boards and the dataset name a field; a blocked
    Next names the field, focuses it and stacks no toasts; the picker opens at the folder of the value and shows
    its keys in the footer."""
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.query_one("#dataset-name", Input).value == "digits"
        app.query_one("#dataset-name", Input).value = "flowers"
        await settle(pilot)
        assert app.draft.get("dataset.name") == "flowers"
        board = (await app.mount_step("quantization")).query_one("#benchmarking-board", Select)
        assert [value for _, value in board._options if value is not Select.NULL] == list(BOARDS)
        board.value = "NUCLEO-F401RE"
        await settle(pilot)
        assert app.draft.get("benchmarking.board") == "NUCLEO-F401RE"
        board.clear()
        await settle(pilot)
        assert app.draft.get("benchmarking.board") is None

        app.query_one("#dataset-seed", Input).value = "twelve"
        app.query_one("#dataset-name", Input).focus()
        for _ in range(3):
            await pilot.press("ctrl+n")
            await pilot.pause()
        assert app.step == "dataset"
        assert app.focused is app.query_one("#dataset-seed", Input)
        message = str(app.query_one("#nav-message", Static).render())
        assert message.startswith("✗ Fix Seed: ") and "number" in message
        assert not app._notifications

        app.query_one("#dataset-quantization_path", Input).focus()
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, PathPickerScreen)
        assert app.screen.start == (DEMO_CONFIG.parent / "demo").resolve()
        # the typed path line has the focus: the footer shows its keys
        await wait_until(pilot, lambda: "Into the list" in screenshot(app) and "Close" in screenshot(app))
        await pilot.press("down")
        keys = ("Select", "Open folder", "Parent folder", "Close")
        await wait_until(pilot, lambda: all(key in screenshot(app) for key in keys))  # the footer follows the focus
        assert len(str(app.screen.query_one("#picker-title").render())) <= 78


def test_save_goes_to_the_opened_file_unless_it_sits_beside_its_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_save_path(DEMO_CONFIG, None) == (str(DEMO_CONFIG), "")
    target, note = default_save_path(ZOO_CONFIG, None)
    assert target == str(tmp_path / ZOO_CONFIG.name) and "beside its model" in note
    assert default_save_path(ZOO_CONFIG, "out.yaml") == ("out.yaml", "")


async def test_review_says_where_save_writes_a_model_folder_config(tmp_path, monkeypatch):
    if not ZOO_CONFIG.exists():
        return
    monkeypatch.chdir(tmp_path)
    app = StquantApp(ZOO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        assert app.query_one("#review-save_path", Input).value == str(tmp_path / ZOO_CONFIG.name)
        assert "beside its model" in str(app.query_one("#review-save-note", Static).render())
