"""Warnings collapsed to the first few and a count of the rest; one key (`w`) shows them all (Review, Summary)."""

from __future__ import annotations

from collections.abc import Sized

from textual.binding import Binding

SHOWN = 2  # at most this many warnings are shown collapsed
TOGGLE = Binding("w", "toggle_warnings", "Warnings")


def warning_lines(warnings: list[str], expanded: bool, shown: int = SHOWN) -> list[str]:
    """`⚠ warning` lines: all of them when at most SHOWN or `expanded`, else the first `shown` and a count."""
    if expanded or not has_more(warnings):
        note = [f"  ({len(warnings)} warnings · w shows only {shown or 'their count'})"] if has_more(warnings) else []
        return [f"⚠ {warning}" for warning in warnings] + note
    hidden = len(warnings) - shown
    count = f"+{hidden} more warnings" if shown else f"{hidden} warnings"
    return [f"⚠ {warning}" for warning in warnings[:shown]] + [f"⚠ {count} · w shows all {len(warnings)}"]


def has_more(warnings: Sized, shown: int = SHOWN) -> bool:
    """Whether `w` has anything to expand."""
    return len(warnings) > shown
