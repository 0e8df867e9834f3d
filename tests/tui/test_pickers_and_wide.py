"""The folder/file picker (ctrl+f) and the wide-terminal layout (the step's YAML beside the form)."""

from __future__ import annotations

from textual.widgets import Input
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle

from stquant_tui.app import StquantApp
from stquant_tui.widgets.dialogs import PathPickerScreen


async def test_folder_picker_fills_the_focused_dataset_path_and_model_picker_shows_folders_and_models(
    tmp_path, monkeypatch
):
    """One app: the folder picker (started in a folder with a subfolder and a file) fills the focused dataset path;
    the model picker (started in another) keeps the value on escape, shows folders and models, fills the model."""
    folders, models = tmp_path / "folders", tmp_path / "models_cwd"
    (folders / "photos" / "cats").mkdir(parents=True)
    (folders / "notes.txt").write_text("not a folder")
    (models / "models").mkdir(parents=True)
    (models / "models" / "net.tflite").write_bytes(b"")
    (models / "models" / "readme.md").write_text("not a model")
    monkeypatch.chdir(folders)
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one("#dataset-training_path", Input).focus()
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, PathPickerScreen)
        tree = app.screen.query_one("#picker-tree")
        assert [child.label.plain for child in tree.root.children] == ["photos"]  # folders only
        await pilot.press("down", "enter")  # Enter picks the folder (it does not open it)
        await settle(pilot)
        assert not isinstance(app.screen, PathPickerScreen)
        assert app.draft.get("dataset.training_path") == str(folders / "photos")  # outside the config folder
        assert app.draft.get("dataset.quantization_path") == "demo/digits"  # the other fields untouched

        monkeypatch.chdir(models)
        for _ in range(2):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert app.step == "model"
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, PathPickerScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.draft.get("general.model_path") == "demo/digits_cnn.h5"

        app.query_one("#general-model_path", Input).value = ""
        await settle(pilot)
        await pilot.press("ctrl+f")  # no model: the picker starts in the working directory
        await pilot.pause()
        await pilot.press("down", "enter")  # open models/
        await pilot.pause()
        tree = app.screen.query_one("#picker-tree")
        assert [child.label.plain for child in tree.root.children[0].children] == ["net.tflite"]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.draft.get("general.model_path") == str(models / "models" / "net.tflite")


async def test_wide_terminal_shows_the_step_yaml_beside_the_form():
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        side = app.query_one("#side")
        assert side.display and side.region.width > 40
        assert "quantization_path: demo/digits" in side.text and "preprocessing" not in side.text
        assert ">seed<" not in app.export_screenshot() and "seed:" not in app.export_screenshot()
        input_ = app.query_one("#dataset-seed", Input)
        input_.focus()
        await pilot.press("7")
        await settle(pilot)
        assert "seed: 7" in side.text
        assert ">seed<" in app.export_screenshot() or "seed:" in app.export_screenshot()  # drawn (the label is "Seed")
        for _ in range(4):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert app.step == "review" and not side.display  # Review shows the whole YAML itself
    narrow = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)
    async with narrow.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not narrow.query_one("#side").display
