"""Dataset and Model steps flag, as the user types, what the engine's preflight knows (in its words)."""

from __future__ import annotations

import shutil

from textual.widgets import Input, Select, Static
from tui_helpers import DEMO_CONFIG, ROOT, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.engine_client import default_engine_cmd

DIGITS = DEMO_CONFIG.parent / "demo" / "digits"


def shown(app, widget_id: str) -> str:
    return str(app.query_one(widget_id, Static).render())


async def test_dataset_step_flags_an_empty_class_folder_and_a_class_without_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(DIGITS / "digit_0", data / "digit_0")
    (data / "digit_1").mkdir()
    monkeypatch.chdir(ROOT)
    app = StquantApp(DEMO_CONFIG, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one("#dataset-class_names", Input).value = ""
        app.query_one("#dataset-quantization_path", Input).value = str(data)
        await wait_until(pilot, lambda: "no images in the folder of class 'digit_1'" in shown(app, "#dataset-feedback"))
        app.query_one("#dataset-class_names", Input).value = "digit_0, digit_1, sunflower"
        await wait_until(
            pilot,
            lambda: (
                f"dataset.class_names: no folder for class 'sunflower' in {data}" in shown(app, "#dataset-feedback")
            ),
        )


async def test_model_step_flags_a_file_that_is_not_a_model_and_a_colour_mode_the_model_does_not_take(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)
    fake = tmp_path / "model.h5"
    fake.write_text("not HDF5")
    app = StquantApp(DEMO_CONFIG, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "model"
        await pilot.pause()
        app.query_one("#general-model_path", Input).value = str(fake)
        await wait_until(pilot, lambda: "⚠" in shown(app, "#model-info"), timeout=60)
        await wait_until(pilot, lambda: f"{fake}: not a Keras model" in shown(app, "#model-verdict"), timeout=60)
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
        await wait_until(pilot, lambda: shown(app, "#model-verdict").strip() == "", timeout=60)
