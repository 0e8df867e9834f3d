"""The UI process never loads TensorFlow, tf_keras or ONNX Runtime (they corrupt the screen and are slow): not
while walking the wizard, not while a comparison runs on the Compare screen (one process for both)."""

from __future__ import annotations

import subprocess
import sys

from replay_engine import TUTORIAL_CONFIG
from tui_helpers import FAKE_ENGINE, HERE, ROOT

HEAVY = ("tensorflow", "tf_keras", "onnxruntime", "ai_edge_litert", "onnx")

SCRIPT = """
import asyncio, sys
sys.path.insert(0, {here!r})
import stquant_tui.app
from replay_engine import REPLAY_ENGINE
from stquant_tui.app import StquantApp
from stquant_tui.draft import STEPS
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.compare_table import CHOICES

async def walk():
    app = StquantApp(engine_cmd={fake!r})
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(4):
            await pilot.press("ctrl+n")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert app.step == "review", app.step

async def compare():
    app = StquantApp({config!r}, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        for name in STEPS:  # every step, Run and Summary included (each mounted when first shown)
            await app.mount_step(name)
        app.step = "review"
        await pilot.press("ctrl+k")
        await pilot.press("ctrl+r")
        for _ in range(500):
            if isinstance(app.screen, CompareScreen) and app.screen.finished is not None:
                break
            await pilot.pause(0.02)
        assert app.screen.finished.exit_code == 0

asyncio.run(walk())
print("walk loaded:" + ",".join(m for m in {heavy!r} if m in sys.modules))
asyncio.run(compare())
print("compare loaded:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def test_running_the_ui_and_a_comparison_in_it_loads_no_ml_runtime(tmp_path):
    config = tmp_path / "tutorial.yaml"
    config.write_text(TUTORIAL_CONFIG)
    script = SCRIPT.format(here=str(HERE), fake=FAKE_ENGINE, config=str(config), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["walk loaded:", "compare loaded:"]
