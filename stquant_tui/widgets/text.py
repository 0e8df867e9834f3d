"""Text lines that change only when their text does."""

from __future__ import annotations

from textual.widgets import Static


def show_text(widget: Static, text: str) -> None:
    """Show `text` in `widget`, unless it shows it already: each `Static.update` lays the whole screen out again,
    and the wizard sets the same line (an empty error, the step bar) on every key typed."""
    if widget.content != text:
        widget.update(text)
