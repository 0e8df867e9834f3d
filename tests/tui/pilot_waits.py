"""A shorter idle window for the wizard tests' pilot (Textual 8's `Pilot` has no public setting for it).

Each `pilot.press`, `pilot.click` and `pilot.pause` ends in `wait_for_idle` (textual._wait): it sleeps
SLEEP_GRANULARITY (20 ms) at a time until this process used less than SLEEP_IDLE of CPU in one such window; a key
press waits twice. `cheap_pilot_waits` makes the window 5 ms (the same 1/20 ratio). A slower pilot typed keys far
apart, so the wizard's 0.4 s debounce started `stquant validate` children mid-typing (each about half a second of
CPU) that no test asks for. The heuristic sees neither a worker thread blocked on a child nor the child itself,
with either window: a test that needs a worker's result, a child's answer or a screen drawn after one waits for it
(`tui_helpers.wait_until`), not for the pilot.
"""

from __future__ import annotations

import pytest
import textual._wait

WINDOW = 0.005  # seconds


@pytest.fixture(autouse=True)
def cheap_pilot_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pilot's idle window of 5 ms (see the module's docstring)."""
    monkeypatch.setattr(textual._wait, "SLEEP_GRANULARITY", WINDOW)
    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", WINDOW / 20)
