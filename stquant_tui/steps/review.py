"""Review step: the exact YAML that will be written, `stquant validate`'s verdict on it (each problem:
Enter jumps to its field), and where Save writes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from engine.config.schema import Problem
from stquant_tui.draft import Draft
from stquant_tui.verdict import Verdict
from stquant_tui.workers import RETRY_CHECK

EXIT_MEANING = {1: "engine failure", 2: "invalid config", 3: "missing or unreadable input"}


class ReviewStep(Vertical):
    """Not a form: shows the draft and the engine's verdict on it."""

    step = "review"

    def __init__(self, save_path: str, save_note: str = "") -> None:
        super().__init__(id="step-review", classes="step")
        self.save_path = save_path
        self.save_note = save_note

    def compose(self) -> ComposeResult:
        yield TextArea("", language="yaml", read_only=True, id="review-yaml", show_line_numbers=True, soft_wrap=False)
        yield Static("", id="review-status")
        yield OptionList(id="review-problems")
        with Horizontal(id="review-save-row"):
            yield Label("Save to ", classes="field-label")
            yield Input(
                self.save_path,
                id="review-save_path",
                compact=True,
                select_on_focus=False,
                tooltip=self.save_note or None,
            )
        note = Static(self.save_note, id="review-save-note")
        note.display = bool(self.save_note)
        yield note

    def refresh_review(self, draft: Draft, verdict: Verdict | None, check_error: str | None = None) -> int:
        """Re-render the YAML and the verdict (`None`: still being checked, or `check_error` says why validate
        could not run: then the list offers Retry); return the schema's problem count."""
        area = self.query_one("#review-yaml", TextArea)
        text = draft.yaml_text()
        if area.text != text:
            area.load_text(text)
        schema_problems = draft.problems()
        status = self.query_one("#review-status", Static)
        if verdict is None and check_error:
            self._list(schema_problems, retry=True)
            status.update(
                f"✗ stquant validate did not answer ({check_error}); select Retry and press Enter".replace("[", r"\[")
            )
            status.add_class("-error")
            return len(schema_problems)
        if verdict is None:
            self._list(schema_problems)
            status.update(
                "… stquant validate is checking this config and the files it names"
                + (f" ({len(schema_problems)} problem(s) so far)" if schema_problems else "")
            )
            status.set_class(bool(schema_problems), "-error")
            return len(schema_problems)
        self._list(verdict.problems)
        if verdict.ok:
            lines = ["✓ stquant validate: ok. ctrl+o saves it, ctrl+r runs it."]
        else:
            meaning = EXIT_MEANING.get(verdict.exit_code, "error")
            lines = [
                f"✗ stquant validate: exit {verdict.exit_code} ({meaning}), {len(verdict.problems)} problem(s)"
                " — select one, Enter goes to its field"
            ]
        lines += [f"⚠ {warning}" for warning in verdict.warnings[:2]]
        status.update("\n".join(lines).replace("[", r"\["))
        status.set_class(not verdict.ok, "-error")
        return len(schema_problems)

    def _list(self, problems: list[Problem], retry: bool = False) -> None:
        listing = self.query_one("#review-problems", OptionList)
        highlighted = listing.highlighted
        listing.clear_options()
        if retry:
            listing.add_option(Option("↻ Retry stquant validate", id=RETRY_CHECK))
        listing.add_options(
            [Option(str(p).replace("[", r"\["), id=f"problem:{index}:{p.key}") for index, p in enumerate(problems)]
        )
        listing.display = bool(problems) or retry
        if listing.option_count and highlighted is not None:
            listing.highlighted = min(highlighted, listing.option_count - 1)

    @property
    def target(self) -> str:
        return self.query_one("#review-save_path", Input).value.strip()
