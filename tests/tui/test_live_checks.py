"""Dataset and Model steps flag, as the user types, what the engine's preflight knows (in its words); the Model
step's "Trust code stored in this model file" tick lets the real engine inspect a model with stored code."""

from __future__ import annotations

import shutil

from textual.widgets import Checkbox, Input, Select, Static
from trust_model_file import lambda_model
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, ROOT, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.engine_client import default_engine_cmd

DIGITS = DEMO_CONFIG.parent / "demo" / "digits"


def shown(app, widget_id: str) -> str:
    return str(app.query_one(widget_id, Static).render())


def counting_engine(tmp_path) -> tuple[list[str], object]:
    """The stand-in engine, noting each command it runs (validate, inspect) in a file; returns (command, file)."""
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    script = tmp_path / "engine.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec {" ".join(FAKE_ENGINE)} "$@"\n')
    script.chmod(0o755)
    return [str(script)], calls


async def test_validate_runs_only_on_the_steps_that_show_its_answer(tmp_path):
    """Opening a config and editing on Dataset start no `stquant validate` child; showing the Model step validates
    the draft as it is then, and Review shows that verdict without validating the same text again."""
    command, calls = counting_engine(tmp_path)
    app = StquantApp(DEMO_CONFIG, engine_cmd=command)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#dataset-quantization_split", Input).value = "0.5"
        await pilot.pause(0.6)  # past the edit's debounce (0.4 s)
        await settle(pilot)
        assert app.draft.get("dataset.quantization_split") == 0.5
        assert "validate" not in calls.read_text().split()
        await app.mount_step("model")
        app.step = "model"
        await wait_until(pilot, lambda: app.current_verdict is not None)
        assert app.current_verdict.ok
        await app.mount_step("review")
        app.step = "review"
        await pilot.pause()
        assert shown(app, "#review-status").startswith("✓ stquant validate: ok.")
        await settle(pilot)
        assert calls.read_text().split().count("validate") == 1, calls.read_text()


async def dataset_step_flags_an_empty_class_folder_and_a_class_without_folder(pilot, data) -> None:
    app = pilot.app
    app.query_one("#dataset-class_names", Input).value = ""
    app.query_one("#dataset-quantization_path", Input).value = str(data)
    await wait_until(pilot, lambda: "no images in the folder of class 'digit_1'" in shown(app, "#dataset-feedback"))
    app.query_one("#dataset-class_names", Input).value = "digit_0, digit_1, sunflower"
    await wait_until(
        pilot,
        lambda: f"dataset.class_names: no folder for class 'sunflower' in {data}" in shown(app, "#dataset-feedback"),
    )


async def tick_lets_the_real_engine_inspect_a_model_with_stored_code(pilot, model) -> None:
    app = pilot.app
    app.query_one("#general-model_path", Input).value = str(model)
    info = app.query_one("#model-info", Static)
    await wait_until(pilot, lambda: "Lambda layer 'square'" in str(info.render()), timeout=60)
    assert "--trust-model" in str(info.render()) and "Output width" not in str(info.render())
    # a long model path wraps the warning over more lines: scroll the tick into view, as a user would
    app.query_one("#trust-model", Checkbox).scroll_visible(animate=False)
    await pilot.pause()
    await pilot.click("#trust-model", offset=(3, 1))  # on the box itself, not the corner of its border
    await wait_until(pilot, lambda: "Output width 10" in str(info.render()), timeout=60)
    assert "run as stored code (trusted): square" in str(info.render())


async def test_dataset_and_model_steps_flag_what_the_engine_finds_and_the_tick_trusts_stored_code(
    tmp_path, monkeypatch
):
    """One app, the real engine's checks: an empty class folder and a class without folder (Dataset); a file that is
    not a model, a model with stored code the tick lets the engine inspect, a colour mode the model does not take
    (Model)."""
    data = tmp_path / "data"
    shutil.copytree(DIGITS / "digit_0", data / "digit_0")
    (data / "digit_1").mkdir()
    fake = tmp_path / "model.h5"
    fake.write_text("not HDF5")
    monkeypatch.chdir(ROOT)
    app = StquantApp(DEMO_CONFIG, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await dataset_step_flags_an_empty_class_folder_and_a_class_without_folder(pilot, data)

        app.step = "model"
        await pilot.pause()
        app.query_one("#general-model_path", Input).value = str(fake)
        await wait_until(pilot, lambda: "⚠" in shown(app, "#model-info"), timeout=60)
        await wait_until(pilot, lambda: f"{fake}: not a Keras model" in shown(app, "#model-verdict"), timeout=60)
        await tick_lets_the_real_engine_inspect_a_model_with_stored_code(pilot, lambda_model(tmp_path / "square.h5"))

        app.query_one("#general-model_path", Input).value = "demo/digits_cnn.h5"
        app.step = "preprocessing"
        await pilot.pause()
        app.query_one("#preprocessing-color_mode", Select).value = "grayscale"
        app.step = "model"
        await wait_until(
            pilot,
            lambda: (
                "preprocessing.color_mode: grayscale gives 1 channel(s) but the model "
                "digits_cnn.h5 expects 3" in shown(app, "#model-verdict")
            ),
            timeout=60,
        )
        app.step = "preprocessing"
        await pilot.pause()
        app.query_one("#preprocessing-color_mode", Select).value = "rgb"
        await wait_until(pilot, lambda: app.draft.get("preprocessing.color_mode") == "rgb")
        app.step = "model"  # validate runs where its answer is shown; the line is blank until it answers
        await wait_until(pilot, lambda: app.current_verdict is not None, timeout=60)
        await pilot.pause()
        assert shown(app, "#model-verdict").strip() == ""
