"""Helpers shared by the TUI tests (imported as a top-level module from this folder)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_ENGINE = [sys.executable, str(HERE / "fake_engine.py")]
DEMO_CONFIG = ROOT / "sample_configs" / "quantization_config.yaml"
ZOO_CONFIG = (
    ROOT.parent / "shared/assets/models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft_config.yaml"
)


async def wait_until(pilot, condition, timeout: float = 15.0) -> None:
    """Poll `condition()` while the app keeps processing messages, for at most `timeout` seconds of wall time.

    The app runs in this event loop, so a sleep lets it handle its messages and refresh its screen; `pilot.pause`
    would also make every widget on the screen handle a callback at each poll, CPU spent for as long as the wait
    lasts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    if condition():
        return
    raise AssertionError(f"condition not reached in {timeout:g} s")


async def stop_with_escape(pilot, screen) -> None:
    """Esc on a screen whose engine child is running, then yes: the child ends interrupted (exit code 130)."""
    from stquant_tui.widgets.dialogs import ConfirmScreen

    await pilot.press("escape")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
    await pilot.press("y")
    await wait_until(pilot, lambda: screen.finished is not None, timeout=60)
    await pilot.pause()
    assert screen.finished.exit_code == 130
    assert screen.process.process.poll() == 130


async def settle(pilot) -> None:
    """Let workers finish and the messages they posted be handled. A worker cancelled meanwhile (a closed picker's
    tree loader) is not waited for: Textual's wait raises WorkerCancelled for it."""
    from textual.worker import WorkerCancelled

    while True:
        try:
            await pilot.app.workers.wait_for_complete([w for w in pilot.app.workers if not w.is_cancelled])
            break
        except WorkerCancelled:  # cancelled while waited for: wait for the others
            continue
    await pilot.pause()
    await pilot.pause()


async def mount_form_steps(app) -> None:
    """Mount every form step (the wizard mounts a step when it is first shown): for checks over every field."""
    from stquant_tui.app import FORM_STEPS

    for name in FORM_STEPS:
        await app.mount_step(name)


def field_values(app) -> dict[str, object]:
    """What every config field shows, by key."""
    from stquant_tui.widgets.fields import FieldRow

    return {row.key: row.editor.value for row in app.query(FieldRow)}
