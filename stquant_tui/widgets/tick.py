"""A Checkbox whose state is in its text, not only its colour: `[x]` ticked, `[ ]` not (readable with NO_COLOR)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox

TICKED, UNTICKED = "[x]", "[ ]"


class Tick(Checkbox):
    """Checkbox drawn `[x] label` / `[ ] label`; the ticked mark is also bold."""

    DEFAULT_CSS = """
    Tick > .toggle--button, Tick:ansi > .toggle--button { background: transparent; color: $text-muted; }
    Tick.-on > .toggle--button, Tick:ansi.-on > .toggle--button { color: $text-success; text-style: bold; }
    """

    def render(self) -> Content:
        """The mark, then the label (styled as Checkbox styles them)."""
        mark = Content.assemble((TICKED if self.value else UNTICKED, self.get_visual_style("toggle--button")))
        label = self.label.pad(1, 1).stylize_before(self.get_visual_style("toggle--label"))
        return Content.assemble(mark, label)
