"""Recover the accuracy int8 lost: ask the target and budget, run `stquant recover` on the draft, show each step.

Opened from the Summary and the Compare screen (`ctrl+g`). `RecoverQuestion` asks the target (agreement with the
float model in percent, or the largest accuracy drop in points) and the budget (board, RAM, flash); the Recover
screen then runs the engine's search on the draft (with the Compare variant's settings, when opened from there),
one table row per step as the engine reports it, and says the outcome. Adopting dismisses with the config keys
of the best step (`quantization.float_layers`, `calibration_method`, `bias_correction`, and the variant's
settings), which the app writes into the draft and saves. Esc stops a running search (asks first) or goes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, Static

from engine.footprint.boards import BOARDS, find_board
from engine.run.recovery import Budget, Recovery, Step, Target
from stquant_tui.compare_table import STAR
from stquant_tui.engine_screen import EngineJobScreen
from stquant_tui.messages import RunProgress, RunStage
from stquant_tui.recover_client import RecoverFinished, RecoverProcess, RecoverStep
from stquant_tui.verdict import write_temp_config
from stquant_tui.widgets.dialogs import Question
from stquant_tui.widgets.footer import KeyFooter
from stquant_tui.workers import when_attached

TARGETS = {"agreement": "agreement ≥ (%)", "max_drop": "drop ≤ (points)"}
QUESTION_WIDTH = 60  # inside RecoverQuestion's 66 columns, less its border and padding
REMEDY_WIDTH = 22  # the remedy column at 80 columns (15 with the ms column); full text: the detail line
Request = tuple[Target, Budget]


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _cut(text: str, width: int) -> str:
    """The end of `text` (what tells remedies apart: the method, the layer) in `width` columns."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def target_text(target: Target) -> str:
    if target.kind == "agreement":
        return f"agreement ≥ {target.value:g} %"
    return f"drop ≤ {target.value:g} pt"


def budget_text(budget: Budget) -> str:
    parts = [
        *([budget.board] if budget.board else []),
        *([f"RAM ≤ {budget.max_ram_kib:g} KiB"] if budget.max_ram_kib is not None else []),
        *([f"flash ≤ {budget.max_flash_kib:g} KiB"] if budget.max_flash_kib is not None else []),
        *([f"≤ {budget.max_ms:g} ms"] if budget.max_ms is not None else []),
    ]
    return ", ".join(parts) if parts else "no budget"


def step_result(step: Step) -> str:
    """What the search made of a step: it meets the target, it is over the budget, kept, or not kept."""
    if step.meets_target:
        return "✓ target"
    if not step.within_budget:
        return "✗ budget"
    return "kept" if step.kept else "–"


def step_cells(step: Step, timed: bool) -> list[str]:
    """A step's row: index, remedy, agreement, accuracy, drop, RAM, flash, [ms], what the search made of it."""
    width = REMEDY_WIDTH - 7 if timed else REMEDY_WIDTH
    cells = [
        str(step.index),
        _cut(step.remedy, width),
        *(_figure(v) for v in (step.agreement, step.accuracy, step.drop, step.activation_ram_kib)),
        _figure(step.weights_flash_kib),
    ]
    return [*cells, *([_figure(step.estimated_inference_ms)] if timed else []), step_result(step)]


def settings_text(step: Step) -> str:
    """A step's settings in one line (the keys it writes into the config)."""
    layers = step.settings.get("float_layers") or []
    return (
        f"calibration_method {step.settings.get('calibration_method')}, "
        f"bias_correction {str(step.settings.get('bias_correction')).lower()}, "
        f"float_layers [{', '.join(layers)}]"
    )


def adopted_settings(step: Step, base: dict[str, Any]) -> dict[str, Any]:
    """The config keys that re-run a step: `base` (the variant's keys), then the step's quantization keys
    (an empty `float_layers` is left out: the default)."""
    keys = {f"quantization.{key}": value for key, value in step.settings.items()}
    if not keys.get("quantization.float_layers"):
        keys["quantization.float_layers"] = None
    return {**base, **keys}


def outcome_text(event: RecoverFinished, steps: int) -> str:
    """The line under the table: met, not met (what stopped the search), stopped, or failed."""
    recovery = event.recovery
    if event.exit_code == 130:
        return f"Stopped: {steps} step(s) measured" + (f"; recovery.json in {recovery.run_dir}" if recovery else "")
    if recovery is not None and recovery.status in ("met", "not_met"):  # the engine's line says which
        return f"{'✓' if recovery.status == 'met' else '✗'} {recovery.outcome or event.error}"
    return f"✗ Failed (exit {event.exit_code}): {event.error}"


class RecoverQuestion(Question[Request | None]):
    """The target and the budget of a recovery; dismisses with (Target, Budget) or None."""

    ANSWERS = (("start", "enter", "Start"), ("cancel", "esc", "Cancel"))
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "answer('cancel')", "Cancel")]
    DEFAULT_CSS = """
    RecoverQuestion .recover-row { height: 1; }
    RecoverQuestion .recover-label { width: 11; color: $text-muted; }
    RecoverQuestion #recover-kind { width: 22; }
    RecoverQuestion #recover-value { width: 10; }
    RecoverQuestion #recover-board { width: 28; }
    RecoverQuestion #recover-ram, RecoverQuestion #recover-flash { width: 10; }
    """

    def __init__(self, question: str, target: Target, board: str | None) -> None:
        super().__init__(question)
        self.target, self.board = target, board

    def body(self) -> ComposeResult:
        with Horizontal(classes="recover-row"):
            yield Label("Target", classes="recover-label")
            yield Select(
                [(shown, kind) for kind, shown in TARGETS.items()],
                value=self.target.kind,
                allow_blank=False,
                compact=True,
                id="recover-kind",
            )
            yield Label(" ")
            yield Input(f"{self.target.value:g}", type="number", compact=True, id="recover-value")
        with Horizontal(classes="recover-row"):
            yield Label("Board", classes="recover-label")
            board = find_board(self.board or "")
            yield Select(
                [(name, name) for name in BOARDS],
                prompt="(no board)",
                value=board.name if board else Select.NULL,
                compact=True,
                id="recover-board",
            )
        with Horizontal(classes="recover-row"):
            yield Label("Max RAM", classes="recover-label")
            yield Input(type="number", compact=True, id="recover-ram", placeholder="no limit")
            yield Label(" KiB  flash ")
            yield Input(type="number", compact=True, id="recover-flash", placeholder="no limit")
            yield Label(" KiB")

    def on_mount(self) -> None:
        self.query_one("#recover-value", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_answer("start")

    def action_answer(self, answer: str) -> None:
        """Start only with a target typed (else say so and stay)."""
        if answer == "cancel" or self.request() is not None:
            super().action_answer(answer)

    def result(self, answer: str) -> Request | None:
        return self.request() if answer == "start" else None

    def request(self) -> Request | None:
        """The target and budget typed (the engine checks their ranges), or None after saying what is missing."""
        value = self._number("#recover-value")
        if value is None:
            self.notify("Give the target: a number.", severity="error")
            return None
        board = self.query_one("#recover-board", Select).value
        target = Target(kind=self.query_one("#recover-kind", Select).value, value=value)
        budget = Budget(
            board=None if board is Select.NULL else str(board),
            max_ram_kib=self._number("#recover-ram"),
            max_flash_kib=self._number("#recover-flash"),
        )
        return target, budget

    def _number(self, selector: str) -> float | None:
        try:
            return float(self.query_one(selector, Input).value)
        except ValueError:
            return None


class RecoverScreen(EngineJobScreen[dict[str, Any] | None]):
    """Run `stquant recover` on the app's draft; dismisses with the config keys of the adopted step (or None)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "adopt", "Adopt"),
        Binding("escape", "stop", "Stop"),
        Binding("escape", "close", "Back"),
    ]
    DEFAULT_CSS = """
    RecoverScreen { layout: vertical; }
    RecoverScreen #recover-title { height: auto; background: $panel; }
    RecoverScreen #recover-status { height: auto; padding: 0 1; }
    RecoverScreen #recover-stage { width: 1fr; height: auto; }
    RecoverScreen #recover-progress { width: 22; }
    RecoverScreen #recover-table { height: 1fr; }
    RecoverScreen #recover-detail { height: auto; padding: 0 1; color: $text-muted; }
    RecoverScreen #recover-outcome { height: auto; padding: 0 1; text-style: bold; }
    """

    PREFIX = "recover"
    STOP_QUESTION = "Stop the search? Steps measured so far stay in the table."

    def __init__(self, target: Target, budget: Budget, settings: dict[str, Any] | None = None) -> None:
        """`settings`: config keys to recover with instead of the draft's (a Compare variant's)."""
        super().__init__()
        self.target, self.budget, self.settings = target, budget, dict(settings or {})
        self.steps: list[Step] = []
        self.finished: RecoverFinished | None = None

    @property
    def recovery(self) -> Recovery | None:
        return self.finished.recovery if self.finished else None

    def compose(self) -> ComposeResult:
        model = Path(str(self.app.draft.get("general.model_path") or "?")).name  # type: ignore[attr-defined]
        yield Static(
            f" Recover {model} · {target_text(self.target)} · {budget_text(self.budget)} · sizes in KiB",
            id="recover-title",
        )
        with Horizontal(id="recover-status"):
            yield Static("Starting the engine…", id="recover-stage")
            yield ProgressBar(id="recover-progress", show_eta=False)
        table: DataTable[str] = DataTable(id="recover-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="recover-detail")
        yield Static("", id="recover-outcome")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#recover-table", DataTable)
        table.add_column("#", key="index")
        table.add_columns("Remedy", "Agr %", "Acc %", "Drop", "RAM", "Flash")
        if self.budget.board:
            table.add_column("ms")
        table.add_column("Result")
        self.start()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "adopt":
            return None if self.running or self.best() is None else True
        if action == "stop":
            return self.running
        if action == "close":
            return not self.running
        return True

    # ------------------------------------------------------------ run
    def start(self) -> None:
        """Write the draft (with `settings`) to a temp file and start the engine on it."""
        app: Any = self.app  # the StquantApp
        draft = app.draft.copy()
        for key, value in self.settings.items():
            draft.set(key, value)
        if self.budget.board is None:  # "(no board)": not the config's either
            draft.edit("benchmarking.board", None)
        self.config_file = write_temp_config(draft, ".stquant-tui-recover-")
        self.process = RecoverProcess(
            app.engine_cmd, self.config_file, self.target, self.budget, trust_model=app.trust_model
        )
        try:
            self.process.start()
        except OSError as exc:
            self.remove_config()
            self.show_finished(RecoverFinished(1, error=f"cannot start the engine: {exc}"))
            return
        self.read()

    def read_failed(self, reason: str) -> RecoverFinished:
        return RecoverFinished(1, None, None, f"the wizard could not read the search's events ({reason})")

    @on(RunStage)
    @when_attached
    def stage_started(self, event: RunStage) -> None:
        self.query_one("#recover-stage", Static).update(f"{event.name}  ({len(self.steps)} step(s) done)")
        self.query_one("#recover-progress", ProgressBar).update(total=None, progress=0)

    @on(RunProgress)
    @when_attached
    def progressed(self, event: RunProgress) -> None:
        self.query_one("#recover-stage", Static).update(
            f"{event.stage} {event.done}/{event.total}  ({len(self.steps)} step(s) done)"
        )
        self.query_one("#recover-progress", ProgressBar).update(total=event.total, progress=event.done)

    @on(RecoverStep)
    @when_attached
    def step_done(self, event: RecoverStep) -> None:
        self.steps.append(event.step)
        table = self.query_one("#recover-table", DataTable)
        table.add_row(*step_cells(event.step, bool(self.budget.board)), key=str(event.step.index))
        table.move_cursor(row=table.row_count - 1)

    @on(RecoverFinished)
    @when_attached
    def recover_finished(self, event: RecoverFinished) -> None:
        self.show_finished(event)

    def show_finished(self, event: RecoverFinished) -> None:
        """The outcome line; the result's row starred and highlighted."""
        self.running, self.finished = False, event
        self.remove_config()
        self.query_one("#recover-progress", ProgressBar).display = False
        self.query_one("#recover-stage", Static).update(
            f"Done: {event.recovery.run_dir}" if event.recovery else f"Ended (exit {event.exit_code})"
        )
        best = self.best()
        lines = [outcome_text(event, len(self.steps))]
        if best is not None:
            lines.append(f"a adopts step {best.index}: {settings_text(best)}")
            table = self.query_one("#recover-table", DataTable)
            if str(best.index) in table.rows:
                table.update_cell(str(best.index), "index", f"{best.index}{STAR}", update_width=True)
                table.move_cursor(row=table.get_row_index(str(best.index)))
                table.focus()
        self.query_one("#recover-outcome", Static).update("\n".join(lines).replace("[", r"\["))
        self.show_detail()

    def best(self) -> Step | None:
        """The step the search ended on (None while it runs, or when it stopped before deciding)."""
        recovery = self.recovery
        if recovery is None or recovery.best is None:
            return None
        return next((step for step in recovery.steps if step.index == recovery.best), None)

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        """The highlighted step's remedy in full and its settings."""
        table = self.query_one("#recover-table", DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        step = next((s for s in self.steps if str(s.index) == key), None)
        if step is not None:
            text = f"{step.index}: {step.remedy} · {settings_text(step)} · {step.seconds:.1f} s"
            self.query_one("#recover-detail", Static).update(text.replace("[", r"\["))

    # ------------------------------------------------------------ adopt
    def action_adopt(self) -> None:
        best = self.best()
        if best is not None and not self.running:
            self.dismiss(adopted_settings(best, self.settings))
