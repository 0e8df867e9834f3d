"""Wide terminals only: the YAML that the current step writes, beside the form, updated as you type."""

from __future__ import annotations

from collections.abc import Callable

from textual.containers import VerticalScroll
from textual.widgets import Static


class StepYaml(VerticalScroll):
    """Hidden below the app's `-wide` breakpoint and on the steps without a form (see app.tcss)."""

    can_focus = False

    def __init__(self) -> None:
        super().__init__(id="side")
        self.border_title = "YAML of this step"
        self.text = ""  # the YAML last rendered
        self._source: Callable[[], str] = str  # what gives the current step's YAML

    def compose(self):
        yield Static("", id="side-yaml")

    def show(self, source: Callable[[], str]) -> None:
        """Keep `source` of the YAML; make and render the text only while the panel is visible (a resize to wide
        renders it then): a narrow terminal never dumps the YAML of each edit."""
        self._source = source
        if self.screen.has_class("-wide"):
            self._render_text()

    def on_resize(self) -> None:
        self._render_text()

    def _render_text(self) -> None:
        from rich.syntax import Syntax  # imported only on wide terminals

        self.text = self._source()
        body = Syntax(self.text, "yaml", background_color="default", word_wrap=True) if self.text else ""
        self.query_one("#side-yaml", Static).update(body)
