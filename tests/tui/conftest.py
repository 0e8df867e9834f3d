"""Fixtures for the TUI tests: a fake engine, no animations, no cursor blink."""

from __future__ import annotations

import pytest
from pilot_waits import cheap_pilot_waits  # noqa: F401 - an autouse fixture (pilot_waits.py)
from tui_helpers import FAKE_ENGINE


@pytest.fixture(autouse=True)
def _quiet_terminal(monkeypatch):
    """Deterministic rendering: no animations, no cursor blink."""
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None, raising=False)


@pytest.fixture
def fake_engine(monkeypatch, tmp_path) -> list[str]:
    """The fake engine command; its runs write under tmp_path/run."""
    monkeypatch.setenv("FAKE_ENGINE_RUN_DIR", str(tmp_path / "run"))
    return list(FAKE_ENGINE)
