"""Review step: the exact YAML that will be written, every problem (Enter jumps to it), save path."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from stquant_tui.draft import Draft


class ReviewStep(Vertical):
    """Not a form: shows the draft and the engine's verdict on it."""

    step = "review"

    def __init__(self, save_path: str) -> None:
        super().__init__(id="step-review", classes="step")
        self.save_path = save_path

    def compose(self) -> ComposeResult:
        yield TextArea("", language="yaml", read_only=True, id="review-yaml", show_line_numbers=True,
                       soft_wrap=False)
        yield Static("", id="review-status")
        yield OptionList(id="review-problems")
        with Horizontal(id="review-save-row"):
            yield Label("Save to ", classes="field-label")
            yield Input(self.save_path, id="review-save_path", compact=True, select_on_focus=False)

    def refresh_review(self, draft: Draft) -> int:
        """Re-render the YAML and the problem list; return the number of problems."""
        area = self.query_one("#review-yaml", TextArea)
        text = draft.yaml_text()
        if area.text != text:
            area.load_text(text)
        problems = draft.problems()
        listing = self.query_one("#review-problems", OptionList)
        listing.clear_options()
        listing.add_options([Option(str(p).replace("[", r"\["), id=f"problem:{p.key}") for p in problems])
        listing.display = bool(problems)
        status = self.query_one("#review-status", Static)
        if problems:
            status.update(f"✗ {len(problems)} problem(s) — select one and press Enter to fix it")
        else:
            status.update("✓ The engine accepts this config. ctrl+o saves it, ctrl+r runs it.")
        status.set_class(bool(problems), "-error")
        return len(problems)

    @property
    def target(self) -> str:
        return self.query_one("#review-save_path", Input).value.strip()
