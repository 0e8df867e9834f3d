"""The Model step's "Trust code stored in this model file" tick: wizard state passed as --trust-model."""

from __future__ import annotations

import base64
import json
import marshal

import h5py
from textual.widgets import Checkbox, Input, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle, wait_until

from stquant_tui.app import StquantApp
from stquant_tui.engine_client import default_engine_cmd


def lambda_model(path):
    """A Keras 2 .h5 holding only a config: Input 16x16x3 → Lambda `t ** 2` (not recognised) → Dense(10)."""
    code = base64.b64encode(marshal.dumps((lambda t: t**2).__code__)).decode()
    layers = [
        {
            "class_name": "InputLayer",
            "name": "image",
            "config": {"name": "image", "batch_input_shape": [None, 16, 16, 3], "dtype": "float32"},
            "inbound_nodes": [],
        },
        {
            "class_name": "Lambda",
            "name": "square",
            "config": {"name": "square", "function": [code, None, None], "function_type": "lambda", "arguments": {}},
            "inbound_nodes": [[["image", 0, 0, {}]]],
        },
        {
            "class_name": "Dense",
            "name": "scores",
            "config": {"name": "scores", "units": 10},
            "inbound_nodes": [[["square", 0, 0, {}]]],
        },
    ]
    config = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": layers,
            "input_layers": [["image", 0, 0]],
            "output_layers": [["scores", 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.8.0"
    return path


async def test_tick_lets_the_real_engine_inspect_a_model_with_stored_code(tmp_path):
    model = lambda_model(tmp_path / "square.h5")
    app = StquantApp(DEMO_CONFIG, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "model"
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


async def test_tick_reaches_the_run_but_not_the_yaml(tmp_path, fake_engine):
    app = StquantApp(DEMO_CONFIG, engine_cmd=fake_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "model"
        await pilot.pause()
        app.query_one("#trust-model", Checkbox).value = True
        await settle(pilot)
        assert "trust" not in app.draft.yaml_text()
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.process is not None)
        assert app.process.argv[-1] == "--trust-model" and app.process.argv[: len(FAKE_ENGINE)] == FAKE_ENGINE
        await wait_until(pilot, lambda: not app.running)
