"""Preprocessing step: rescaling, resizing, colour mode, with a preview of the input range."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Static

from engine.config import expressions
from stquant_tui.steps.base import Step
from stquant_tui.widgets.fields import FieldRow
from stquant_tui.widgets.text import show_text

USUAL_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-128.0, 127.0))  # what image models are trained on


def input_span(scale: Any, offset: Any) -> tuple[float, float] | None:
    """What pixels 0..255 become after `x * scale + offset` (low, high); None when either is not a number."""
    try:
        s = expressions.evaluate(scale) if isinstance(scale, str) else float(scale)
        o = expressions.evaluate(offset) if isinstance(offset, str) else float(offset)
        if isinstance(s, tuple) or isinstance(o, tuple):  # a shape, not a number
            return None
        low, high = sorted((0 * s + o, 255 * s + o))
    except Exception:  # noqa: BLE001 - any bad value: no preview, the field shows the error
        return None
    return low, high


def usual(low: float, high: float) -> bool:
    """Whether the inputs span one of the ranges image models are trained on (to a thousandth of the span)."""
    return any(abs(low - a) + abs(high - b) <= 1e-3 * (b - a) for a, b in USUAL_RANGES)


def input_range(scale: Any, offset: Any) -> str:
    """What the inputs will span; a warning line when that is not a range image models usually take."""
    span = input_span(scale, offset)
    if span is None:
        return "Input range: (fix scale and offset)"
    low, high = span
    text = f"Input range: inputs span {low:,.5g} .. {high:,.5g} (pixels 0..255 × scale + offset)"
    if not usual(low, high):
        text += (
            "\n⚠ unusual: image models take 0..1 (scale 1/255), -1..1 (scale 1/127.5, offset -1) or 0..255 (scale 1)"
        )
    return text


class PreprocessingStep(Step):
    step = "preprocessing"

    def compose(self) -> ComposeResult:
        yield Static(
            "Model input = pixel × scale + offset (expressions such as 1/127.5 are fine).", classes="step-help"
        )
        yield FieldRow("preprocessing.rescaling.scale", "Scale", "number")
        yield FieldRow("preprocessing.rescaling.offset", "Offset", "number")
        yield FieldRow("preprocessing.resizing.interpolation", "Interpolation", "select")
        yield FieldRow("preprocessing.resizing.aspect_ratio", "Aspect ratio", "select")
        yield FieldRow("preprocessing.color_mode", "Color mode", "select")
        yield Static("", id="preprocessing-preview", classes="feedback")

    def draft_changed(self, key: str) -> None:
        if key == "" or key.startswith("preprocessing.rescaling"):
            text = input_range(
                self.draft.get("preprocessing.rescaling.scale"), self.draft.get("preprocessing.rescaling.offset")
            )
            preview = self.query_one("#preprocessing-preview", Static)
            show_text(preview, text)
            preview.set_class("⚠" in text, "-warn")
