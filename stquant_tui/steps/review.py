"""Review step: the exact YAML that will be written, `stquant validate`'s verdict on it (each problem:
Enter jumps to its field), and where Save writes."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from engine.config.schema import Problem
from stquant_tui.draft import Draft
from stquant_tui.verdict import Verdict
from stquant_tui.warning_list import TOGGLE, has_more, warning_lines
from stquant_tui.workers import RETRY_CHECK

EXIT_MEANING = {1: "engine failure", 2: "invalid config", 3: "missing or unreadable input"}


class ReviewStep(Vertical):
    """Not a form: shows the draft and the engine's verdict on it."""

    step = "review"
    BINDINGS: ClassVar[list[BindingType]] = [TOGGLE]

    def __init__(self, save_path: str, save_note: str = "") -> None:
        super().__init__(id="step-review", classes="step")
        self.save_path = save_path
        self.save_note = save_note
        self.status_lines: list[str] = []  # the verdict's own lines, above its warnings
        self.warnings: list[str] = []
        self.expanded = False

    def compose(self) -> ComposeResult:
        yield TextArea("", language="yaml", read_only=True, id="review-yaml", show_line_numbers=True, soft_wrap=False)
        float_layers = Static("", id="review-float-layers")
        float_layers.display = False  # shown when the draft keeps layers in float
        yield float_layers
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
        self.show_float_layers(draft.get("quantization.float_layers"))
        schema_problems = draft.problems()
        status = self.query_one("#review-status", Static)
        self.warnings = verdict.warnings if verdict else []
        self.refresh_bindings()
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
        self.status_lines = lines
        self.show_status()
        status.set_class(not verdict.ok, "-error")
        return len(schema_problems)

    def show_float_layers(self, layers: object) -> None:
        """`quantization.float_layers` (written by an adopted recovery), when set: those layers stay float."""
        line = self.query_one("#review-float-layers", Static)
        line.display = isinstance(layers, list) and bool(layers)
        if isinstance(layers, list) and layers:
            names = ", ".join(str(name) for name in layers)
            line.update(f"Float layers ({len(layers)}, kept in float by stquant run): {names}".replace("[", r"\["))

    def show_status(self) -> None:
        """The verdict's lines, then its warnings (collapsed unless `w` expanded them)."""
        lines = self.status_lines + warning_lines(self.warnings, self.expanded)
        self.query_one("#review-status", Static).update("\n".join(lines).replace("[", r"\["))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return has_more(self.warnings) if action == "toggle_warnings" else True

    def action_toggle_warnings(self) -> None:
        """`w`: every warning, or only the first few again."""
        self.expanded = not self.expanded
        self.show_status()

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

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """The problem list gets focus with its first row highlighted, so Enter acts at once."""
        listing = event.widget
        if isinstance(listing, OptionList) and listing.highlighted is None and listing.option_count:
            listing.highlighted = 0

    @property
    def target(self) -> str:
        return self.query_one("#review-save_path", Input).value.strip()
