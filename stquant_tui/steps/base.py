"""What every form step shares: its rows, loading them from the draft, and its own field errors."""

from __future__ import annotations

from textual.containers import VerticalScroll

from stquant_tui.draft import Draft
from stquant_tui.widgets.fields import FieldRow


class Step(VerticalScroll):
    """A page of the wizard. `step` is its name in `draft.STEPS`."""

    step = ""
    can_focus = False

    def __init__(self) -> None:
        super().__init__(id=f"step-{self.step}", classes="step")

    @property
    def draft(self) -> Draft:
        return self.app.draft  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        if self.is_attached:  # not when mounted as the app quits: its rows may be gone already
            self.load()

    def rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def load(self) -> None:
        """Show the draft's values in every row."""
        for row in self.rows():
            row.show(self.draft.get(row.key))
        self.draft_changed("")

    def draft_changed(self, key: str) -> None:
        """A key changed somewhere (``""`` after a load): refresh derived displays."""

    def show_verdict(self, verdict) -> None:
        """`stquant validate` answered on the current draft (a `stquant_tui.verdict.Verdict`)."""

    def row_for(self, key: str) -> FieldRow | None:
        """The row editing `key`, or the closest row above or below it."""
        rows = self.rows()
        for row in rows:
            if row.key == key:
                return row
        for row in rows:
            if row.key.startswith(key + ".") or key.startswith(row.key + "."):
                return row
        return None
