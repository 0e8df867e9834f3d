"""Cheaper pilot waits for the wizard tests: what they change in Textual 8's `Pilot`, which has no public setting.

Each `pilot.press`, `pilot.click` and `pilot.pause` waits twice:

- `wait_for_idle` (textual._wait) sleeps SLEEP_GRANULARITY (20 ms) at a time until this process used less than
  SLEEP_IDLE of CPU in one such window; a key press does it twice. `cheap_pilot_waits` makes the window 5 ms (the
  same 1/20 ratio). A slower pilot typed keys far apart, so the wizard's 0.4 s debounce started `stquant validate`
  children mid-typing (each about half a second of CPU) that a user typing at that speed would start too, but no
  test asks for. The heuristic sees neither a worker thread blocked on a child nor the child itself, with either
  window: a test that needs a worker's result, a child's answer or a screen drawn after one waits for it
  (`tui_helpers.wait_until`), not for the pilot.
- `Pilot._wait_for_screen` posts a callback to the app, the screen and every widget under it (about 250 in the
  wizard, most on steps not shown) and waits until each ran it, i.e. handled the messages queued before it; each
  callback costs its widget a message and an Idle event. `wait_for_screen` gives the same guarantee for less: it
  skips the widgets whose task waits for a message on an empty queue, whose callback would run at once.
"""

from __future__ import annotations

import asyncio

import pytest
import textual._wait
from textual.app import ModeError, ScreenError
from textual.message_pump import MessagePump
from textual.pilot import Pilot, WaitForScreenTimeout


def _busy(node: MessagePump) -> bool:
    """Not parked: `node`'s task is not waiting for a message on an empty queue (it has one to handle, is handling
    one, has not started, or holds a callback for the end of its next message)."""
    queue = node._message_queue
    parked = not queue.values and node._pending_message is None and bool(queue.ready_event._waiters)  # type: ignore[attr-defined]
    return not parked or bool(node._next_callbacks)


async def wait_for_screen(self: Pilot, timeout: float = 30.0) -> bool:
    """`Pilot._wait_for_screen` (same code), waiting only on the app, the screen and the busy widgets under it."""
    try:
        screen = self.app.screen
    except (ScreenError, ModeError):  # no screen (yet, or any more): nothing to wait for
        return False
    count = 0
    count_zero_event = asyncio.Event()

    def decrement_counter() -> None:
        nonlocal count
        count -= 1
        if count == 0:
            count_zero_event.set()

    for node in [self.app, screen, *(node for node in screen.walk_children() if _busy(node))]:
        if node.call_later(decrement_counter):
            count += 1
    if count:
        wait_for = [
            asyncio.create_task(count_zero_event.wait()),
            asyncio.create_task(self.app._exception_event.wait()),
        ]
        _, pending = await asyncio.wait(wait_for, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if len(wait_for) == len(pending):
            raise WaitForScreenTimeout("Timed out while waiting for widgets to process pending messages.")
        if count > 0:
            return False
    return True


@pytest.fixture(autouse=True)
def cheap_pilot_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pilot's idle window of 5 ms and its screen wait on the busy widgets only (see the module's docstring)."""
    monkeypatch.setattr(textual._wait, "SLEEP_GRANULARITY", 0.005)
    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", 0.005 / 20)
    monkeypatch.setattr(Pilot, "_wait_for_screen", wait_for_screen)
