"""Command line entry, odd configs, and the model step's fit warnings."""

from __future__ import annotations

import pytest
from textual.widgets import Select, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle, wait_until

from stquant_tui.__main__ import main
from stquant_tui.app import StquantApp


def test_version_help_and_missing_config(capsys, tmp_path):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and "stquant-tui" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "--no-mouse" in capsys.readouterr().out
    assert main([str(tmp_path / "nope.yaml")]) == 3
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("general: [unclosed\n")
    assert main([str(bad)]) == 2


async def test_invalid_values_load_as_written_and_are_flagged_and_the_model_step_warns_about_classes_and_channels(
    tmp_path, monkeypatch
):
    """One app: a value the schema refuses loads as written and Review flags it; once fixed, the Model step warns
    that the model's outputs are not the classes and (the engine's words) that the colour mode is not its input."""
    monkeypatch.setenv("FAKE_ENGINE_OUTPUTS", "5")
    config = tmp_path / "odd.yaml"
    text = DEMO_CONFIG.read_text().replace("demo/", f"{DEMO_CONFIG.parent}/demo/")  # the demo's model and images
    config.write_text(text.replace("interpolation: nearest", "interpolation: cubic"))
    app = StquantApp(config, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.mount_step("preprocessing")
        await settle(pilot)
        select = app.query_one("#preprocessing-resizing-interpolation", Select)
        assert select.value == "cubic"
        assert app.query_one("#row-preprocessing-resizing-interpolation").has_class("-invalid")
        assert app.draft.get("preprocessing.resizing.interpolation") == "cubic"  # unchanged until edited
        app.step = "review"
        await pilot.pause()
        assert "interpolation" in str(app.query_one("#review-problems").get_option_at_index(0).prompt)

        select.value = "nearest"
        app.query_one("#preprocessing-color_mode", Select).value = "grayscale"
        app.step = "model"
        warnings = (await app.mount_step("model")).query_one("#model-warnings", Static)
        verdict = app.query_one("#model-verdict", Static)  # the engine's words (stquant validate)
        await wait_until(pilot, lambda: "channel" in str(verdict.render()) and "outputs" in str(warnings.render()))
        assert "outputs 5 values but there are 10 classes" in str(warnings.render())
        assert "grayscale gives 1 channel(s) but the model digits_cnn.h5 expects 3" in str(verdict.render())


async def test_path_completion_and_key_to_step(tmp_path, monkeypatch):
    from stquant_tui.draft import step_of, widget_id
    from stquant_tui.widgets.fields import PathSuggester

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    suggest = PathSuggester()
    assert await suggest.get_suggestion("mo") == "models/"
    assert await suggest.get_suggestion("models/n") == "models/net.h5"
    assert await suggest.get_suggestion("zz") is None
    assert step_of("dataset.seed") == "dataset" and step_of("general.model_path") == "model"
    assert step_of("preprocessing") == "preprocessing" and step_of("training.epochs") == "review"
    assert widget_id("preprocessing.resizing.interpolation") == "preprocessing-resizing-interpolation"
