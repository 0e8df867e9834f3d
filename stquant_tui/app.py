"""StquantApp: one screen, a step header, a ContentSwitcher of steps, a button bar and the footer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import AwaitMount, Widget
from textual.widgets import Button, ContentSwitcher, Input, OptionList, Static
from textual.worker import Worker, WorkerState

from engine.common.errors import ConfigError
from engine.run.recovery import Budget, Target
from stquant_tui.draft import (
    STEP_TITLES,
    STEPS,
    Draft,
    find_demo_config,
    step_of,
    widget_id,
)
from stquant_tui.engine_client import RunProcess, default_engine_cmd
from stquant_tui.messages import DatasetScanned, RunFinished, VerdictReady
from stquant_tui.run_actions import RunActions
from stquant_tui.steps.base import Step
from stquant_tui.steps.dataset import DatasetStep
from stquant_tui.steps.model import ModelStep
from stquant_tui.steps.preprocessing import PreprocessingStep
from stquant_tui.steps.quantization import QuantizationStep
from stquant_tui.verdict import VALIDATE_TIMEOUT, Verdict, check_draft
from stquant_tui.widgets.dialogs import (
    MODEL_SUFFIXES,
    ConfirmScreen,
    KeysScreen,
    PathPickerScreen,
    StartScreen,
    UnsavedScreen,
)
from stquant_tui.widgets.fields import FieldRow
from stquant_tui.widgets.footer import KeyFooter
from stquant_tui.widgets.step_yaml import StepYaml
from stquant_tui.widgets.text import show_text
from stquant_tui.workers import ENDED_BADLY, RETRY_CHECK, failure_line

FORM_STEPS = STEPS[:4]
VERDICT_STEPS = ("model", "review")  # the steps that show `stquant validate`'s answer: validate runs only there
DEFAULT_AGREEMENT = 99.0  # the recovery's target agreement first proposed, percent (as Compare's)
NAV_BUTTONS = {  # which buttons each step shows
    "dataset": ("next",),
    "preprocessing": ("back", "next"),
    "model": ("back", "next"),
    "quantization": ("back", "next"),
    "review": ("back", "save", "run"),
    "run": ("back", "cancel"),
    "summary": ("back",),
}
STEP_KEYS = {  # action -> steps where its key is shown
    "next": FORM_STEPS,
    "back": STEPS[1:],
    "save": ("review",),
    "run": ("review",),
    "browse": ("dataset", "model"),
    "use_classes": ("dataset",),
    "cancel_run": ("run",),
    "show_run_dir": ("summary",),
    "copy_model": ("summary",),
    "again": ("summary",),
    "full_table": ("summary",),
    "page": ("summary",),
    "compare": ("review", "summary"),
    "recover": ("summary",),
}


class StquantApp(RunActions, App[int]):
    """The stquant wizard. `config_path=None` starts from the bundled demo config."""

    CSS_PATH = "app.tcss"
    # -wide: the step's YAML beside the form.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012 - Textual types it as an instance attribute
    TITLE = "stquant"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("ctrl+p", "back", "Back", priority=True),
        Binding("ctrl+o", "save", "Save", priority=True),
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("ctrl+g", "recover", "Recover", priority=True),  # before the Summary's other keys: seen at 80 columns
        Binding("ctrl+f", "browse", "Browse", priority=True),
        Binding("ctrl+t", "use_classes", "Use folder classes", priority=True),
        Binding("escape", "cancel_run", "Cancel run"),
        Binding("l", "show_run_dir", "Folder"),
        Binding("y", "copy_model", "Copy path"),
        Binding("a", "again", "Again"),
        Binding("f", "full_table", "Full table"),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+k", "compare", "Compare", priority=True),
        Binding("f1", "keys", "Keys", priority=True),
        Binding("question_mark", "keys", "Keys", show=False),  # outside a text field (where ? is typed)
    ]

    step: reactive[str] = reactive("dataset", bindings=True)
    running: reactive[bool] = reactive(False, bindings=True)

    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        out_path: str | Path | None = None,
        engine_cmd: list[str] | None = None,
        clock=None,
        new: bool = False,
        ask_start: bool = False,
    ) -> None:
        """`new`: start from a clean draft (no file); `ask_start` (no `config_path`): ask whether to start a new
        config or from the demo (shown meanwhile)."""
        super().__init__()
        source = Path(config_path) if config_path else None if new else find_demo_config()
        self.draft = Draft.load(source) if source else Draft({}) if new else Draft()
        self.ask_start = ask_start and not config_path and not new
        self.out_path, self.save_note = default_save_path(config_path, out_path)
        self.engine_cmd = engine_cmd or default_engine_cmd()
        self.clock = clock
        self.process: RunProcess | None = None
        self.run_config: Path | None = None
        self.last_run: RunFinished | None = None
        self.verdict: Verdict | None = None  # `stquant validate` on the draft's current text (None: checking)
        self.check_error: str | None = None  # why validate gave no verdict on `_checked` (it failed to run)
        self.validate_timeout = VALIDATE_TIMEOUT
        self._checked = ""  # the text (and trust flag) that `verdict` is about, or being checked
        self._check_worker: Worker[None] | None = None
        self._check_timer: Timer | None = None
        self.run_when_checked = False  # ctrl+r came while validate was checking: run once it passes
        self._steps: dict[str, Widget] = {}  # each step's widget, made when first asked for (`step_widget`)
        self._step_mounts: dict[str, AwaitMount] = {}  # mounted when first shown (`mount_step`)
        self._blocked_step: str | None = None  # the step whose Next was refused, while it says why

    # ------------------------------------------------------------ layout
    def get_default_screen(self) -> Screen:
        """Textual's default screen with the terminal width's breakpoint class already set: its first resize then
        finds the class there instead of adding it, which restyles every widget on the screen."""
        width = self.size.width
        breakpoint = next(name for edge, name in sorted(self.HORIZONTAL_BREAKPOINTS, reverse=True) if width >= edge)
        return Screen(id="_default", classes=breakpoint)

    def compose(self) -> ComposeResult:
        yield Static("", id="crumbs")
        with Horizontal(id="body"):
            with ContentSwitcher(initial="step-dataset", id="steps"):
                yield self.step_widget("dataset")  # the others: `mount_step`, when first shown
            yield StepYaml()
        yield Static("", id="field-help")
        with Horizontal(id="nav"):
            yield Static("", id="nav-message")
            yield Button("◀ Back ^p", id="back", compact=True)
            yield Button("Next ^n ▶", id="next", compact=True, variant="primary")
            yield Button("Save ^o", id="save", compact=True, variant="success")
            yield Button("Run ^r", id="run", compact=True, variant="primary")
            yield Button("Cancel run esc", id="cancel", compact=True, variant="error")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.refresh_side()
        self.call_after_refresh(self._first_screen_shown)
        # a dropped SSH connection or a closed terminal: stop the engine, remove temp files, exit
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.hang_up)

    def refresh_side(self) -> None:
        """Show the current form step's YAML in the side panel (visible on wide terminals)."""
        side = self.query_one(StepYaml)
        side.set_class(self.step in FORM_STEPS, "-form")
        side.show(lambda: self.draft.step_yaml(self.step))

    def _first_screen_shown(self) -> None:
        if self.ask_start:
            self.push_screen(StartScreen("Start a new config, or open the demo (a digits classifier)?"), self._start)

    def step_widget(self, name: str) -> Any:
        """The step named `name` (an instance of its step class, e.g. ReviewStep for "review"); its own fields (a
        Summary's `summary`) are there at once, its widgets once mounted (`mount_step`)."""
        if name not in self._steps:
            self._steps[name] = self._new_step(name)
        return self._steps[name]

    def _new_step(self, name: str) -> Widget:
        """A step's widget, not mounted (the modules of Review, Run and Summary load once one is needed)."""
        if name == "review":
            from stquant_tui.steps.review import ReviewStep

            return ReviewStep(self.out_path, self.save_note)
        if name == "run":
            from stquant_tui.steps.run import RunStep

            return RunStep(self.clock)
        if name == "summary":
            from stquant_tui.steps.summary import SummaryStep

            return SummaryStep()
        form: dict[str, type[Step]] = {
            "dataset": DatasetStep,
            "preprocessing": PreprocessingStep,
            "model": ModelStep,
            "quantization": QuantizationStep,
        }
        return form[name]()

    async def mount_step(self, name: str) -> Any:
        """Mount the step named `name` (hidden) unless it is; return it once mounted. Each step loads the draft
        when mounted, so only the steps shown (or asked for) pay for their widgets."""
        widget = self.step_widget(name)
        self._start_mount(name)
        if not widget.is_mounted and name in self._step_mounts:
            await self._step_mounts[name]
        return widget

    def _start_mount(self, name: str) -> None:
        """Put the step in the switcher, hidden, unless it is there (Dataset: composed with the app)."""
        widget = self.step_widget(name)
        switcher = self.query_one("#steps", ContentSwitcher)
        if widget.parent is None and switcher.is_attached:  # not when the app is closing
            widget.display = False  # the switcher hides only the children it has when mounted
            self._step_mounts[name] = switcher.mount(widget)

    def show_help(self, row: FieldRow) -> None:
        """The focused field's help line (from the schema's descriptions)."""
        show_text(self.query_one("#field-help", Static), f"{row.label}: {row.help}" if row.help else "")

    def watch_step(self, step: str) -> None:
        """Show the step; one not mounted yet is mounted now and shown once mounted (before the app's next message,
        so a test's `pilot.pause()` finds it shown)."""
        if self.step_widget(step).is_mounted:
            self._show_step(step)
        else:
            self._start_mount(step)
            self.call_later(self._show_once_mounted, step)

    async def _show_once_mounted(self, step: str) -> None:
        widget = await self.mount_step(step)
        if self.step == step and widget.is_mounted:  # not left meanwhile, nor closing
            self._show_step(step)
            self._focus_step(step)  # now too, not only after the next refresh: nothing typed meanwhile goes astray

    def _show_step(self, step: str) -> None:
        self.query_one("#steps", ContentSwitcher).current = f"step-{step}"
        show_text(self.query_one("#nav-message", Static), "")
        self._blocked_step = None
        self.query_one("#field-help", Static).display = step in FORM_STEPS
        self.refresh_crumbs()
        for button in self.query("#nav Button"):
            button.display = button.id in NAV_BUTTONS[step]
        self.query_one("#back", Button).disabled = step == "run" and self.running
        if step in VERDICT_STEPS:
            self.show_verdict_step(step)
        self.refresh_side()
        self.call_after_refresh(self._focus_step, step)

    def refresh_crumbs(self) -> None:
        """The step bar: the steps, the current one reversed, and `[+]` while the draft has unsaved edits."""
        parts = [f"[reverse] {STEP_TITLES[s]} [/]" if s == self.step else STEP_TITLES[s] for s in STEPS]
        marker = r" \[+] " if self.draft.modified else "  "
        show_text(self.query_one("#crumbs", Static), " stquant" + marker + " › ".join(parts))

    def _focus_step(self, step: str) -> None:
        widget = self.step_widget(step)
        if self.focused is None or widget not in self.focused.ancestors:
            targets = [
                w
                for w in widget.query("Input, Select, OptionList, TextArea, DataTable, RichLog")
                if w.focusable and w.display
            ]
            if targets:
                targets[0].focus(scroll_visible=False)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in STEP_KEYS and (self.step not in STEP_KEYS[action] or len(self.screen_stack) > 1):
            return False  # not on this step, or a dialog is open
        if action == "cancel_run":
            return self.running
        if action == "recover":  # after a run that measured its int8 model (the search measures on the same images)
            summary = self.step_widget("summary").summary
            measured = summary is not None and summary.accuracy is not None and summary.accuracy.quantized is not None
            return True if measured else None
        if action == "back" and self.step == "run":
            return None if self.running else True
        return True

    # ------------------------------------------------------------ draft edits
    def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        self.apply_edit(event.key, event.value)

    def apply_edit(self, key: str, value) -> None:
        """Put a field's value in the draft (empty = not written) and tell the steps."""
        if not self.draft.edit(key, value):
            return
        for step in self.query(Step):
            step.draft_changed(key)
        self.refresh_side()
        self.refresh_crumbs()
        self.request_check()
        if self._blocked_step == self.step:
            self.call_later(self.recheck_blocked)

    # ------------------------------------------------------------ the engine's verdict
    def check_key(self) -> str:
        """What a verdict depends on: the text Save would write and the trust flag."""
        return f"{self.trust_model}\n{self.draft.yaml_text()}"

    @property
    def current_verdict(self) -> Verdict | None:
        """validate's answer on the draft as it is now (None: not asked yet, or being checked)."""
        return self.verdict if self._checked == self.check_key() else None

    def check_pending(self) -> bool:
        """validate has not answered on the draft as it is now (nor failed to run on it)."""
        return self._checked != self.check_key() or (self.verdict is None and self.check_error is None)

    @property
    def trust_model(self) -> bool:
        """The Model step's "trust code stored in this model file" box (not a config key)."""
        model = self._steps.get("model")
        return isinstance(model, ModelStep) and model.trust_model

    def show_verdict_step(self, step: str) -> None:
        """Model or Review shown: validate the draft unless its verdict is about the current text; meanwhile the
        Model step shows no verdict of an older text (Review says it is checking)."""
        if step == "review":
            self.refresh_review()
        else:
            self.step_widget("model").show_verdict(self.current_verdict)
        self.request_check(delay=0)

    def request_check(self, delay: float = 0.4) -> None:
        """Run `stquant validate` on the draft (after `delay` seconds without another edit) if its step shows the
        answer (VERDICT_STEPS); another step's edits are checked once Model or Review is shown."""
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(delay, self._start_check) if delay else None
        if not delay:
            self.call_later(self._start_check)

    def _start_check(self) -> None:
        if self.step not in VERDICT_STEPS or self.check_key() == self._checked or not self.is_running:
            return
        if self._check_worker is not None and not self._check_worker.is_finished:
            return  # one validate at a time: the text as it is when that one ends is checked next
        self._checked = self.check_key()
        self.verdict = self.check_error = None
        self.refresh_review()
        self._check_worker = self._check(self._checked, self.draft.copy(), self.trust_model, str(self.save_target()))

    def retry_check(self) -> None:
        """Run `stquant validate` again on the same text (after it failed to run)."""
        self._checked = ""
        self.request_check(delay=0)

    @work(thread=True, group="validate", exit_on_error=False)
    def _check(self, key: str, draft: Draft, trusted: bool, shown: str) -> None:
        verdict = check_draft(self.engine_cmd, draft, trusted, timeout=self.validate_timeout, shown=shown)
        self.post_message(VerdictReady(key, verdict))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker of the app that raised or was cancelled: say so where its answer is awaited. A validate that
        ended: check the draft again if it was edited meanwhile."""
        if not self.is_running:
            return
        if event.worker is self._check_worker and (event.state is WorkerState.SUCCESS or event.state in ENDED_BADLY):
            if event.state in ENDED_BADLY:  # Review: the reason, naming the engine command, and Retry
                self.check_error = failure_line(event.worker, self.engine_cmd)
                self.refresh_review()
                self._run_if_asked()
            self.request_check(delay=0)
        elif event.state in ENDED_BADLY and event.worker.group == "run":
            self.run_reader_failed(event.worker)

    def on_verdict_ready(self, event: VerdictReady) -> None:
        if event.key != self._checked:
            return  # an older text
        self.verdict = event.verdict
        self.refresh_review()
        for step in self.query(Step):
            step.show_verdict(event.verdict)
        self._run_if_asked()

    def _run_if_asked(self) -> None:
        """validate answered (or could not run): a ctrl+r pressed meanwhile on Review runs now, or is refused."""
        if self.run_when_checked and not self.check_pending():
            self.run_when_checked = False
            if self.step == "review":
                self.call_later(self.run_action, "run")

    def refresh_review(self) -> int:
        """Show the draft and the verdict on Review; return the number of schema problems."""
        if not self.query("#review-status"):  # Review not composed yet
            return len(self.draft.problems())
        checked = self._checked == self.check_key()  # the verdict (or the error) is about the draft as it is
        if not checked:
            self.request_check(delay=0)
        current, check_error = (self.verdict, self.check_error) if checked else (None, None)
        return self.step_widget("review").refresh_review(self.draft, current, check_error)

    def on_dataset_scanned(self, event: DatasetScanned) -> None:
        for step in self.query(ModelStep):  # none while the app is shutting down
            step.draft_changed("detected")

    # ------------------------------------------------------------ navigation
    async def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"back": "back", "next": "next", "save": "save", "run": "run", "cancel": "cancel_run"}
        if event.button.id in actions:
            await self.run_action(actions[event.button.id])

    def step_errors(self, step: str) -> list[tuple[FieldRow | None, str]]:
        """Field errors of the step's visible rows, then the engine's problems for its keys."""
        widget = self.step_widget(step)
        for row in widget.rows():  # keys typed just now may be ahead of their Changed messages
            value = row.sync()
            if row.error is None:
                self.apply_edit(row.key, value)
        return self._errors_now(step)

    def _errors_now(self, step: str) -> list[tuple[FieldRow | None, str]]:
        """What the rows say, else the engine's problems for the step's keys (shown on the row of each key)."""
        widget = self.step_widget(step)
        found: list[tuple[FieldRow | None, str]] = [
            (row, row.error) for row in widget.rows() if row.error and row.display
        ]
        if not found:
            for problem in self.draft.step_problems(step):
                row = widget.row_for(problem.key)
                if row is not None:
                    row.display = True
                    row.set_error(problem.message)
                found.append((row, str(problem)))
        return found

    async def action_next(self) -> None:
        if self.step not in FORM_STEPS:
            return
        await self.mount_step(self.step)  # a key pressed as the step was being mounted
        errors = self.step_errors(self.step)
        row = self.show_blocked(errors)
        if row is not None:
            row.editor.focus()
        if not errors:
            following = STEPS[STEPS.index(self.step) + 1]
            await self.mount_step(following)  # then shown at once
            self.step = following

    def show_blocked(self, errors: list[tuple[FieldRow | None, str]]) -> FieldRow | None:
        """Say on the nav line (wrapped; no toast) what blocks Next, naming the field; return its row."""
        self._blocked_step = self.step if errors else None
        if not errors:
            show_text(self.query_one("#nav-message", Static), "")
            return None
        row, message = next(((r, m) for r, m in errors if r is not None), errors[0])
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f"{row.label}: {row.error or message}" if row is not None else message
        self.query_one("#nav-message", Static).update(f"✗ Fix {where}{more}".replace("[", r"\["))
        return row

    def recheck_blocked(self) -> None:
        """After a blocked Next, on each edit: what still blocks the step, or nothing once it is fixed."""
        if self._blocked_step != self.step or not self.is_running:
            return
        for row in self.step_widget(self.step).rows():  # the engine's messages on rows go; their own stay
            row.set_error(row.validate(row.current()))
        self.show_blocked(self._errors_now(self.step))

    async def action_back(self) -> None:  # replaces App.action_back (screen history): the wizard's Back
        if self.step == "run" and self.running:
            return
        if self.step != "dataset":
            previous = "review" if self.step == "summary" else STEPS[STEPS.index(self.step) - 1]
            await self.mount_step(previous)  # then shown at once
            self.step = previous

    async def jump_to(self, key: str, message: str = "") -> None:
        """Show the field of a config key (from a Review problem)."""
        step = step_of(key)
        if step not in FORM_STEPS:
            self.notify(f"{key} is not edited by the wizard; fix it in the YAML file", severity="warning")
            return
        row = (await self.mount_step(step)).row_for(key)
        self.step = step
        if row is not None:
            row.display = True
            row.set_error(message or row.error)
            self.call_after_refresh(row.editor.focus)

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if option_id == RETRY_CHECK:
            self.retry_check()
        elif option_id.startswith("problem:"):
            _, index, key = option_id.split(":", 2)
            problems = self.verdict.problems if self.verdict is not None else self.draft.problems()
            message = problems[int(index)].message if int(index) < len(problems) else ""
            await self.jump_to(key, message)

    # ------------------------------------------------------------ save
    def action_save(self) -> None:
        self.save_draft()

    def save_draft(self, then: Callable[[], object] | None = None) -> None:
        """Save to the Review's file (asking before overwriting one); `then` runs once it is written."""
        if self.step != "review":
            self.step = "review"
        if self.refresh_review():
            self.notify("Fix the problems listed before saving.", severity="error")
            return
        target = self.save_target()
        if target.is_dir():
            self.notify(f"{target} is a folder; give a file name", severity="error")
            return
        if target.exists():
            self.push_screen(
                ConfirmScreen(f"{target} exists. Overwrite it?"), lambda yes: self._save(target, then) if yes else None
            )
        else:
            self._save(target, then)

    def save_target(self) -> Path:
        """The file Save writes: Review's "Save to" field, else the default."""
        reviews = self.query("#review-save_path")
        typed = reviews.first(Input).value.strip() if reviews else ""
        return Path(os.path.expanduser(typed or self.out_path))

    def _save(self, target: Path, then: Callable[[], object] | None = None) -> None:
        before = self.draft.yaml_text()
        try:
            written = self.draft.save(target)
        except OSError as exc:
            self.notify(f"Cannot write {target}: {exc.strerror}", severity="error")
            return
        except ConfigError as exc:  # the text would not read back as the draft: nothing written
            self.notify(str(exc), severity="error", timeout=15)
            return
        if self.draft.yaml_text() != before:  # relative paths were rebased onto the new folder
            for step in self.query(Step):
                step.load()
            self.refresh_review()
        self.refresh_crumbs()
        self.notify(f"Saved {written}", title="Saved")
        if then is not None:
            then()

    def leave(self) -> None:
        """Quit; with unsaved edits, ask first: save them, discard them, or stay."""
        if not self.draft.modified:
            self.exit()
            return

        def answered(answer: str | None) -> None:
            if answer == "save":
                self.save_draft(then=self.exit)
            elif answer == "discard":
                self.exit()

        self.push_screen(UnsavedScreen(f"The config has unsaved edits (Save writes {self.save_target()})."), answered)

    def _start(self, answer: str | None) -> None:
        """The start question: a new config starts from a clean draft (no demo comment or value)."""
        if answer != "new":
            return
        self.draft = Draft({})
        for step in self.query(Step):
            step.load()
        self.step = "dataset"
        self.refresh_crumbs()
        self.refresh_side()

    def action_keys(self) -> None:
        """`?`/F1: every key of the current screen, from its active bindings (so the list cannot drift)."""
        if not isinstance(self.screen, KeysScreen):
            self.push_screen(
                KeysScreen(
                    self.screen.active_bindings,
                    (r"\[+] in the step bar: unsaved edits; ctrl+q then asks to save them.",),
                )
            )

    # ------------------------------------------------------------ other keys
    def action_browse(self) -> None:
        """Pick the model file (Model step) or the focused dataset folder (Dataset step) in a tree."""
        if self.step == "model":
            key, picker = "general.model_path", lambda start: PathPickerScreen(start, MODEL_SUFFIXES, "a model file")
        else:
            row = self.focused.ancestors_with_self if self.focused else []
            focused = next((w.key for w in row if isinstance(w, FieldRow) and w.path), None)
            key, picker = focused or "dataset.quantization_path", PathPickerScreen
        current = self.draft.get(key)
        start = self.draft.resolve(str(current)).parent if current else Path.cwd()  # shows it among its siblings
        if not start.is_dir():
            start = Path.cwd()

        def picked(path: str | None) -> None:
            if path:  # relative to the config's folder when inside it, else absolute
                relative = os.path.relpath(path, self.draft.base_dir)
                self.query_one(f"#row-{widget_id(key)}", FieldRow).show(path if relative.startswith("..") else relative)

        screen = picker(start)
        screen.current = str(self.draft.resolve(str(current))) if current else screen.current
        self.push_screen(screen, picked)

    def action_use_classes(self) -> None:
        self.step_widget("dataset").use_detected()

    async def action_show_run_dir(self) -> None:
        summary = self.step_widget("summary").summary
        run_dir = (self.last_run.run_dir if self.last_run else None) or (summary.run_dir if summary else None)
        if run_dir:
            (await self.mount_step("run")).log_line(f"Run folder: {run_dir}")
        self.notify(f"Run folder: {run_dir or '(none)'}", timeout=10)

    def action_copy_model(self) -> None:
        summary = self.step_widget("summary").summary
        model = summary.quantized_model if summary else None
        if model:
            self.copy_to_clipboard(model)
            self.notify(f"Copied {model}")
        else:
            self.notify("No quantized model in this run", severity="warning")

    def action_full_table(self) -> None:
        self.step_widget("summary").full_screen()

    def action_page(self, direction: int) -> None:
        self.step_widget("summary").page(direction)

    def action_again(self) -> None:
        self.step = "dataset"

    def action_compare(self) -> None:
        """Open the Compare screen; after an adoption, show Review with the changed draft."""
        from stquant_tui.compare_screen import CompareScreen

        def adopted(changes: list[str] | None) -> None:
            if changes is not None:
                self.step = "review"
                self.refresh_review()

        self.push_screen(CompareScreen(), adopted)

    def adopt_settings(self, settings: dict[str, Any]) -> list[str]:
        """Write config keys into the draft (the form fields follow); one line per key that changed."""
        changes = []
        for key, value in settings.items():
            old = self.draft.get(key)
            if old != value or type(old) is not type(value):
                changes.append(f"{key.split('.')[-1]}: {'(not set)' if old is None else old} → {value}")
            self.apply_edit(key, value)
            for row in self.query(FieldRow):
                if row.key == key:
                    row.show(value)
        return changes

    def action_recover(self) -> None:
        """Summary: recover the accuracy the run's int8 model lost. The first target proposed: an agreement of
        DEFAULT_AGREEMENT % (100 once the run reaches it), else a drop of at most LARGE_DROP_PT points."""
        from stquant_tui.steps.summary import LARGE_DROP_PT

        summary = self.step_widget("summary").summary
        accuracy = summary.accuracy if summary is not None else None
        if accuracy is None or accuracy.quantized is None:
            return
        figures = []
        if accuracy.agreement is not None:
            figures.append(f"agreement with the float model {accuracy.agreement:.2f} %")
            value = DEFAULT_AGREEMENT if accuracy.agreement < DEFAULT_AGREEMENT else 100.0
            target = Target(kind="agreement", value=value)
        else:
            target = Target(kind="max_drop", value=LARGE_DROP_PT)
        if accuracy.float is not None:
            figures.append(f"accuracy {accuracy.float:.2f} % → {accuracy.quantized:.2f} %")
        self.recover(f"This run: {', '.join(figures)} on {accuracy.images} images.", target)

    def recover(self, now: str, target: Target, settings: dict[str, Any] | None = None) -> None:
        """Ask the target and budget, then search with `stquant recover` (on the draft with `settings`); an adopted
        step is written into the draft and saved."""
        from stquant_tui.recover_screen import QUESTION_WIDTH, RecoverQuestion, RecoverScreen

        question = textwrap.fill(f"{now} Search for the cheapest fix until:", QUESTION_WIDTH)

        def asked(request: tuple[Target, Budget] | None) -> None:
            if request is not None:
                self.push_screen(RecoverScreen(*request, settings=settings), self.recovered)

        self.push_screen(RecoverQuestion(question, target, self.draft.get("benchmarking.board")), asked)

    def recovered(self, settings: dict[str, Any] | None) -> None:
        """An adopted recovery: its keys into the draft, then Review and Save (which asks before overwriting)."""
        from stquant_tui.compare_screen import CompareScreen

        if settings is None:
            return
        if isinstance(self.screen, CompareScreen):
            self.pop_screen()
        changes = self.adopt_settings(settings)
        self.step = "review"
        self.refresh_review()
        self.notify("\n".join(changes) or "The config already says this.", title="Adopted the recovery", timeout=10)
        self.save_draft()


def default_save_path(config_path: str | Path | None, out_path: str | Path | None) -> tuple[str, str]:
    """Where Save writes, and why when it is not the opened file.

    `--out` wins; else the opened file, unless it sits in a model folder (an ST `_config.yaml` beside its
    model), which is not the user's to change: then a file of the same name in the working directory.
    """
    if out_path:
        return str(out_path), ""
    if not config_path:
        return "stquant_config.yaml", ""
    source = Path(config_path)
    if any(p.suffix.lower() in MODEL_SUFFIXES for p in source.resolve().parent.iterdir() if p.is_file()):
        proposed = Path.cwd() / source.name
        return str(proposed), f"{source.name} sits beside its model: Save writes a copy in the working directory"
    return str(config_path), ""
