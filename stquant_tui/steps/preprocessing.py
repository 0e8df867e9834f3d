"""Preprocessing step: rescaling, resizing, colour mode, with a preview of the input range."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from engine.config import expressions
from stquant_tui.steps.base import Step
from stquant_tui.widgets.fields import FieldRow


def input_range(scale, offset) -> str:
    """One line: what pixels 0..255 become after `x * scale + offset`."""
    try:
        s = expressions.evaluate(scale) if isinstance(scale, str) else float(scale)
        o = expressions.evaluate(offset) if isinstance(offset, str) else float(offset)
        if isinstance(s, tuple) or isinstance(o, tuple):  # a shape, not a number
            return "Input range: (fix scale and offset)"
        low, high = sorted((0 * s + o, 255 * s + o))
    except Exception:  # noqa: BLE001 - any bad value: no preview, the field shows the error
        return "Input range: (fix scale and offset)"
    return f"Input range: pixels 0..255 → {low:.4g} .. {high:.4g}"


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
            self.query_one("#preprocessing-preview", Static).update(text)
