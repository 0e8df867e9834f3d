"""Keys a user of lazygit or k9s expects: `?`/F1 lists them, ctrl+q asks before losing edits, a new config
starts clean, typing replaces a field's text, the Review list and the file picker are ready for Enter."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, OptionList, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.widgets.dialogs import KeysScreen, PathPickerScreen, PathTree, StartScreen, UnsavedScreen


def crumbs(app: StquantApp) -> str:
    return str(app.query_one("#crumbs", Static).render())


async def test_edits_mark_the_step_bar_and_ctrl_q_asks_save_discard_or_cancel(tmp_path):
    out = tmp_path / "mine.yaml"
    app = StquantApp(DEMO_CONFIG, out_path=out, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert crumbs(app).startswith(" stquant   Dataset")  # not modified: no marker
        await pilot.press(*"flowers")
        await pilot.pause()
        assert crumbs(app).startswith(" stquant [+]  Dataset") and len(crumbs(app)) <= 80
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("escape")  # Cancel: still here, the edit kept
        await pilot.pause()
        assert app.is_running and app.draft.get("dataset.name") == "flowers"
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("s")  # Save and quit
        await wait_until(pilot, lambda: not app.is_running)
    assert app.return_code == 0
    assert "name: flowers" in out.read_text()


async def test_discard_quits_without_writing_and_a_saved_draft_quits_at_once(tmp_path):
    out = tmp_path / "mine.yaml"
    app = StquantApp(DEMO_CONFIG, out_path=out, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*"flowers", "ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("d")
        await wait_until(pilot, lambda: not app.is_running)
    assert not out.exists()
    app = StquantApp(DEMO_CONFIG, out_path=out, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*"flowers")
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+o")
        await wait_until(pilot, out.exists)
        assert "[+]" not in crumbs(app)  # saved: the marker is gone
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)  # nothing to lose: no question


async def test_a_new_config_starts_from_a_clean_draft(tmp_path, monkeypatch):
    """`stquant-tui` without a config asks; "new" leaves no demo comment or value in what Save writes."""
    monkeypatch.chdir(tmp_path)
    app = StquantApp(engine_cmd=FAKE_ENGINE, ask_start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, StartScreen))
        await app.mount_step("model")  # a step mounted before the answer loads the new draft too
        await pilot.press("n")
        await wait_until(pilot, lambda: app.draft.data == {})
        await settle(pilot)
        assert app.draft.data == {} and not app.draft.modified
        assert app.query_one("#dataset-name", Input).value == ""
        assert app.query_one("#general-model_path", Input).value == ""
        await pilot.press(*"flowers")
        app.step = "review"
        await pilot.pause()
        text = app.query_one("#review-yaml").text
    assert text == "dataset:\n  name: flowers\n"


async def test_typing_replaces_a_filled_field_ctrl_u_clears_it_and_f1_or_question_mark_list_every_key():
    """One app on the demo: typing into a filled field replaces it, ctrl+u (in the footer) clears it; F1 in a
    text field and `?` elsewhere list every key of the screen."""
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.focused is app.query_one("#dataset-name", Input)
        await pilot.press(*"flowers")
        assert app.query_one("#dataset-name", Input).value == "flowers"  # not `digitsflowers`
        footer = {active.binding.description for active in app.screen.active_bindings.values() if active.binding.show}
        assert "Clear field" in footer
        await pilot.press("ctrl+u")
        assert app.query_one("#dataset-name", Input).value == ""

        expected = app.screen.active_bindings
        await pilot.press("f1")  # in a text field, `?` is typed
        await wait_until(pilot, lambda: isinstance(app.screen, KeysScreen))
        table = app.screen.query_one(DataTable)
        shown = {table.get_row_at(i)[0]: table.get_row_at(i)[1] for i in range(table.row_count)}
        for key, active in expected.items():
            assert any(key in keys.split(", ") or (active.binding.key_display or "") in keys for keys in shown), key
        assert shown["ctrl+u"] == "Clear field" and shown["ctrl+q"] == "Quit" and shown["ctrl+n"] == "Next"
        await pilot.press("escape")
        app.step = "review"
        await pilot.pause()
        app.query_one("#review-yaml").focus()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, KeysScreen))
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert ["ctrl+o", "Save"] in rows and ["ctrl+r", "Run"] in rows and ["ctrl+k", "Compare"] in rows


async def test_review_problem_list_highlights_on_focus_and_the_file_picker_starts_at_the_value(tmp_path):
    """One app on the demo: Review's problem list highlights its first row on focus and Enter goes to the field;
    the model picker starts at the value's folder, shows its root and takes a typed path."""
    models = tmp_path / "models"
    (models / "old").mkdir(parents=True)
    (models / "old" / "a.h5").write_bytes(b"")
    (models / "new").mkdir()
    (models / "new" / "b.onnx").write_bytes(b"")
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft.edit("dataset.quantization_split", 2.0)
        review = await app.mount_step("review")
        listing = review.query_one("#review-problems", OptionList)
        app.step = "review"
        # shown at once, focused after the next refresh: a focus given before that one may be taken by it
        await wait_until(pilot, lambda: app.focused is not None and review in app.focused.ancestors)
        assert listing.option_count > 0 and app.focused is not listing
        assert listing.highlighted is None
        # focus, the list's Focus and its step's DescendantFocus are messages handled in turn: wait for their end
        listing.focus()
        await wait_until(pilot, lambda: app.focused is listing and listing.highlighted is not None)
        assert listing.highlighted == 0
        await pilot.press("enter")  # acts at once: goes to the field (focused after the step is shown)
        split = app.query_one("#dataset-quantization_split", Input)
        await wait_until(pilot, lambda: app.step == "dataset" and app.focused is split)

        app.draft.edit("general.model_path", str(models / "old" / "a.h5"))
        app.step = "model"
        await pilot.pause()
        await pilot.press("ctrl+f")
        # the picker is composed, then focuses its path line, after it is pushed: wait for both
        await wait_until(pilot, lambda: isinstance(app.screen, PathPickerScreen) and app.focused is not None)
        screen = app.screen
        typed = screen.query_one("#picker-path", Input)
        await wait_until(pilot, lambda: app.focused is typed)
        assert Path(screen.query_one(PathTree).path) == models / "old"  # the value's folder, not the demo's
        assert str(models / "old") in str(screen.query_one("#picker-title").render())
        assert typed.value == str(models / "old" / "a.h5")
        # a sibling folder: a few keys (the path is selected on focus: End keeps it), and the tree shows it
        await pilot.press("end", *["backspace"] * len("old/a.h5"), *"new/")
        await wait_until(pilot, lambda: Path(screen.query_one(PathTree).path) == models / "new")
        await pilot.press(*"b.onnx", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, PathPickerScreen))
        # the field shows the pick, then its Changed and the row's Edited messages put it in the draft
        await wait_until(pilot, lambda: app.draft.get("general.model_path") == str(models / "new" / "b.onnx"))


def test_new_flag_starts_clean_without_asking():
    from stquant_tui.__main__ import parse_args

    args = parse_args(["--new"])
    app = StquantApp(args.config, new=args.new, ask_start=not args.config, engine_cmd=FAKE_ENGINE)
    assert app.draft.data == {} and app.draft.path is None and not app.ask_start
    assert StquantApp(DEMO_CONFIG, ask_start=True, engine_cmd=FAKE_ENGINE).ask_start is False  # a config given
