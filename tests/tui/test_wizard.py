"""Pilot tests: walk every step at 80x24, see inline errors, fix them, save, reload."""

from __future__ import annotations

from textual.widgets import Input, Select, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, field_values, mount_form_steps, settle, wait_until

from engine.config.schema import load_config
from stquant_tui.app import StquantApp
from stquant_tui.widgets.dialogs import ConfirmScreen
from stquant_tui.widgets.fields import FieldRow


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus an input, clear it and type like a user."""
    widget = pilot.app.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


def error_of(app, key_id: str) -> str:
    return str(app.query_one(f"#{key_id}-error", Static).render())


def invalid(app, key_id: str) -> bool:
    return app.query_one(f"#row-{key_id}", FieldRow).has_class("-invalid")


async def test_walk_every_step_with_errors_then_save_and_reload(tmp_path):
    out = tmp_path / "saved.yaml"
    app = StquantApp(DEMO_CONFIG, out_path=out, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.step == "dataset"
        feedback = str(app.query_one("#dataset-feedback", Static).render())
        assert "10 classes, 300 images" in feedback and "1 non-image" in feedback

        # Dataset: a bad seed and split are flagged while typing, and block Next.
        await type_into(pilot, "#dataset-seed", "abc")
        assert invalid(app, "dataset-seed") and error_of(app, "dataset-seed")
        await type_into(pilot, "#dataset-quantization_split", "1.5")
        assert "less than or equal to 1" in error_of(app, "dataset-quantization_split")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "dataset"
        assert app.focused is app.query_one("#dataset-quantization_split")  # the first bad field
        await type_into(pilot, "#dataset-seed", "42")
        await type_into(pilot, "#dataset-quantization_split", "0.5")
        assert not invalid(app, "dataset-seed") and not invalid(app, "dataset-quantization_split")
        await type_into(pilot, "#dataset-class_names", "a, b")
        await wait_until(
            pilot,
            lambda: (
                "dataset.class_names: no folder for class 'a', 'b'"
                in str(app.query_one("#dataset-feedback", Static).render())
            ),
        )  # the engine's own words
        await pilot.press("ctrl+t")  # use the folder names
        await pilot.pause()
        assert app.draft.get("dataset.class_names") == [f"digit_{k}" for k in range(10)]
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "preprocessing"

        # Preprocessing: scale accepts expressions; garbage is flagged.
        await type_into(pilot, "#preprocessing-rescaling-scale", "one/255")
        assert invalid(app, "preprocessing-rescaling-scale")
        await pilot.press("ctrl+n")
        assert app.step == "preprocessing"
        await type_into(pilot, "#preprocessing-rescaling-scale", "1/255")
        await type_into(pilot, "#preprocessing-rescaling-offset", "0")
        assert "0 .. 1" in str(app.query_one("#preprocessing-preview", Static).render())
        app.query_one("#preprocessing-resizing-interpolation", Select).value = "bilinear"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "model"

        # Model: a missing file is reported by inspect; the demo model is described.
        app.query_one("#general-model_path", Input).value = str(tmp_path / "missing.h5")
        await wait_until(pilot, lambda: "not found" in str(app.query_one("#model-info", Static).render()))
        app.query_one("#general-model_path", Input).value = "demo/digits_cnn.h5"
        await wait_until(pilot, lambda: "Output width 10" in str(app.query_one("#model-info", Static).render()))
        assert str(app.query_one("#model-warnings", Static).render()).strip() == ""
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "quantization"

        # Quantization: choose per-tensor and int8 output.
        app.query_one("#quantization-granularity", Select).value = "per_tensor"
        app.query_one("#quantization-quantization_output_type", Select).value = "int8"
        await pilot.pause()
        assert not app.query_one("#row-quantization-target_opset").display  # ONNX only
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "review"
        assert "granularity: per_tensor" in app.query_one("#review-yaml").text
        await wait_until(pilot, lambda: "validate: ok" in str(app.query_one("#review-status", Static).render()))

        await pilot.press("ctrl+o")
        await wait_until(pilot, out.exists)
        await pilot.press("ctrl+o")  # the file exists now: asks first
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        shown = field_values(app)

    config = load_config(out)
    assert config.dataset.seed == 42 and config.dataset.quantization_split == 0.5
    assert config.preprocessing.rescaling.scale == 1 / 255
    assert config.quantization.granularity == "per_tensor"
    # Relative paths were rebased onto the new folder, so the saved file still finds the demo.
    assert config.resolve_path(config.general.model_path).samefile(DEMO_CONFIG.parent / "demo/digits_cnn.h5")

    again = StquantApp(out, engine_cmd=FAKE_ENGINE)
    async with again.run_test(size=(80, 24)) as pilot:
        await mount_form_steps(again)
        await settle(pilot)
        assert field_values(again) == shown


async def test_review_lists_problems_and_jumps_to_the_field(tmp_path):
    app = StquantApp(DEMO_CONFIG, out_path=tmp_path / "x.yaml", engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.mount_step("quantization")
        await settle(pilot)
        app.query_one("#operation_mode", Select).value = "chain_eqe"  # needs a test set
        app.draft.edit("dataset.quantization_split", 1.0)  # every quantization image calibrates: none left to test on
        await pilot.pause()
        app.step = "review"
        await pilot.pause()
        problems = app.query_one("#review-problems")
        assert problems.option_count == 1
        assert "test_path" in str(problems.get_option_at_index(0).prompt)
        await pilot.press("ctrl+o")  # refuses to save an invalid config
        await pilot.pause()
        assert not (tmp_path / "x.yaml").exists()
        problems.focus()
        problems.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert app.step == "dataset"
        assert app.query_one("#row-dataset-test_path").display


async def test_starts_without_a_config_from_the_demo_or_builtin(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    app = StquantApp(engine_cmd=FAKE_ENGINE)
    assert app.draft.get("general.model_path")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.mount_step("model")
        await settle(pilot)
        assert app.query_one("#general-model_path", Input).value
        assert app.draft.problems() == []
