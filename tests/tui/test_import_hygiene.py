"""The UI process never loads TensorFlow, tf_keras or ONNX Runtime (they corrupt the screen and are slow)."""

from __future__ import annotations

import subprocess
import sys

from tui_helpers import FAKE_ENGINE, ROOT

HEAVY = ("tensorflow", "tf_keras", "onnxruntime", "ai_edge_litert", "onnx")

SCRIPT = f"""
import asyncio, sys
import stquant_tui.app
from stquant_tui.app import StquantApp

async def main():
    app = StquantApp(engine_cmd={FAKE_ENGINE!r})
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(4):
            await pilot.press("ctrl+n")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert app.step == "review", app.step

asyncio.run(main())
print("loaded:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_importing_and_running_the_ui_loads_no_ml_runtime():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "loaded:"
