"""The Compare screen: tick what to vary, run `stquant compare` on the draft, read the table, adopt a variant.

Opened from Review and the Summary (`ctrl+k`). Every ticked value of a key is one of its variant values
(`--vary KEY=V1,V2`; a key with no tick keeps the draft's value); the variants are every combination.
The table fills as the engine reports each variant; the recommended one is starred when the comparison
ends. Adopting writes the highlighted variant's keys into the draft (the form fields follow) and
dismisses with a list of the changes. Esc stops a running comparison (asks first) or goes back.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    Checkbox,
    DataTable,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
)

from engine.footprint.boards import BOARDS, find_board
from engine.run.comparison import Comparison, Variant
from engine.run.recovery import Target
from stquant_tui.compare_client import (
    CompareFinished,
    CompareProcess,
    CompareVariant,
    vary_arguments,
)
from stquant_tui.compare_table import (
    CHOICES,
    DEFAULT_TICKS,
    FIGURES,
    STAR,
    evaluation_text,
    recommendation_text,
    settings_text,
    variant_cells,
    variant_count,
)
from stquant_tui.engine_screen import EngineJobScreen
from stquant_tui.messages import RunProgress, RunStage
from stquant_tui.verdict import write_temp_config
from stquant_tui.widgets.dialogs import ConfirmScreen
from stquant_tui.widgets.footer import KeyFooter
from stquant_tui.widgets.tick import Tick
from stquant_tui.workers import when_attached

DEFAULT_TARGET = 99.0  # percent agreement, the target field's first value
QUESTION_WIDTH = 54  # inside ConfirmScreen's 60 columns, less its border and padding


class CompareScreen(EngineJobScreen[list[str] | None]):
    """Compare quantization variants of the app's draft; dismisses with the adopted changes (or None)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "compare", "Compare"),
        Binding("a", "adopt", "Adopt variant"),
        Binding("ctrl+g", "recover", "Recover"),
        Binding("escape", "stop", "Stop"),
        Binding("escape", "close", "Back"),
    ]
    DEFAULT_CSS = """
    CompareScreen { layout: vertical; }
    CompareScreen #compare-title { height: auto; background: $panel; }
    CompareScreen #compare-options { height: auto; }
    CompareScreen .vary-row { height: 1; padding: 0 1; }
    CompareScreen .vary-label { width: 13; color: $text-muted; }
    CompareScreen Checkbox { margin-right: 2; }
    CompareScreen #compare-target { width: 8; }
    CompareScreen #compare-board { width: 24; }
    CompareScreen #compare-status { height: auto; padding: 0 1; }
    CompareScreen #compare-stage { width: 1fr; height: auto; }
    CompareScreen #compare-progress { width: 22; }
    CompareScreen #compare-table { height: 1fr; }
    CompareScreen #compare-detail { height: 1; padding: 0 1; }
    CompareScreen #compare-info { height: auto; padding: 0 1; color: $text-muted; }
    """

    PREFIX = "compare"
    STOP_QUESTION = "Stop the comparison? Variants measured so far stay in the table."

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.variants: list[Variant] = []
        self.comparison: Comparison | None = None
        self.finished: CompareFinished | None = None
        self.choice_of: dict[str, tuple[str, Any]] = {}  # checkbox id -> (key, value)

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        draft = self.app.draft  # type: ignore[attr-defined]
        yield Static("", id="compare-title")
        with Vertical(id="compare-options"):
            for key, (label, _, values) in CHOICES.items():
                with Horizontal(classes="vary-row"):
                    yield Label(label, classes="vary-label")
                    for index, (value, shown) in enumerate(values):
                        box_id = f"vary-{key.split('.')[-1]}-{index}"
                        self.choice_of[box_id] = (key, value)
                        yield Tick(shown, (key, value) in DEFAULT_TICKS, id=box_id, compact=True)
            with Horizontal(classes="vary-row"):
                yield Label("Target", classes="vary-label")
                yield Input(f"{DEFAULT_TARGET:g}", id="compare-target", compact=True, type="number")
                yield Label(" % agreement   Board ")
                board = find_board(str(draft.get("benchmarking.board") or ""))
                yield Select(
                    [(name, name) for name in BOARDS],
                    id="compare-board",
                    compact=True,
                    prompt="(no board)",
                    value=board.name if board else Select.NULL,
                )
        with Horizontal(id="compare-status"):
            yield Static("Tick what to vary; ctrl+r compares.", id="compare-stage")
            progress = ProgressBar(id="compare-progress", show_eta=False)
            progress.display = False  # shown from the first comparison on: idle, its bar would animate
            yield progress
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="compare-detail")
        yield Static("", id="compare-info")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.update_title()

    def choices(self) -> dict[str, list[Any]]:
        """Each key -> its ticked values, in the order shown."""
        ticked: dict[str, list[Any]] = {key: [] for key in CHOICES}
        for box in self.query(Checkbox):
            if box.value and box.id is not None:
                key, value = self.choice_of[box.id]
                ticked[key].append(value)
        return ticked

    def update_title(self) -> None:
        model = Path(str(self.app.draft.get("general.model_path") or "?")).name  # type: ignore[attr-defined]
        self.query_one("#compare-title", Static).update(
            f" Compare {variant_count(self.choices())} variant(s) of {model} · flash, RAM in KiB"
        )

    @on(Checkbox.Changed)
    def ticked(self) -> None:
        self.update_title()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "compare":
            return None if self.running else True
        if action in ("adopt", "recover"):
            return not self.running and bool(self.variants)
        if action == "stop":
            return self.running
        if action == "close":
            return not self.running
        return True

    # ------------------------------------------------------------ run
    def action_compare(self) -> None:
        if self.running:
            return
        draft = self.app.draft  # type: ignore[attr-defined]
        problems = draft.problems()
        if problems:
            self.notify(f"{problems[0]}", title="Fix the config first (Review lists the problems)", severity="error")
            return
        choices = self.choices()
        if not any(choices.values()):
            self.notify("Tick at least one value to vary.", severity="error")
            return
        target = self.target()
        if target is None:
            self.notify("Target agreement: a number from 0 to 100.", severity="error")
            return
        board = self.query_one("#compare-board", Select).value
        overrides = ["benchmarking.board=null"] if board is Select.NULL and draft.get("benchmarking.board") else []
        self.config_file = write_temp_config(draft, ".stquant-tui-compare-")
        app: Any = self.app  # the StquantApp
        self.process = CompareProcess(
            app.engine_cmd,
            self.config_file,
            [*overrides, *vary_arguments(choices)],
            target=target,
            board=None if board is Select.NULL else str(board),
            trust_model=app.trust_model,
        )
        try:
            self.process.start()
        except OSError as exc:
            self.remove_config()
            self.notify(f"Cannot start the engine: {exc}", severity="error")
            return
        self.reset([key for key, values in choices.items() if values], variant_count(choices))
        self.read()

    def target(self) -> float | None:
        try:
            value = float(self.query_one("#compare-target", Input).value)
        except ValueError:
            return None
        return value if 0 <= value <= 100 else None

    def reset(self, keys: list[str], count: int) -> None:
        """Empty the table for a new comparison of `count` variants varying `keys`."""
        self.keys, self.variants, self.comparison, self.finished = keys, [], None, None
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        table.add_column("#", key="index")
        table.add_columns(*(CHOICES[key][1] for key in keys), *(title for title, _ in FIGURES))
        progress = self.query_one("#compare-progress", ProgressBar)
        progress.update(total=count, progress=0)
        progress.display = True
        self.query_one("#compare-stage", Static).update("Starting the engine…")
        self.query_one("#compare-detail", Static).update("")
        self.query_one("#compare-info", Static).update("")
        self.lock_options(True)

    def lock_options(self, locked: bool) -> None:
        """Grey out the choices while a comparison runs."""
        for widget in self.query("#compare-options Checkbox, #compare-options Input, #compare-options Select"):
            widget.disabled = locked

    def read_failed(self, reason: str) -> CompareFinished:
        """The options unlock when this message arrives."""
        return CompareFinished(1, None, f"the wizard could not read the comparison's events ({reason})")

    @on(RunStage)
    @when_attached
    def stage_started(self, event: RunStage) -> None:
        self.query_one("#compare-stage", Static).update(f"{event.name}  ({len(self.variants)} done)")

    @on(RunProgress)
    @when_attached
    def progressed(self, event: RunProgress) -> None:
        self.query_one("#compare-stage", Static).update(
            f"{event.stage} {event.done}/{event.total}  ({len(self.variants)} done)"
        )

    @on(CompareVariant)
    @when_attached
    def variant_done(self, event: CompareVariant) -> None:
        self.variants.append(event.variant)
        self.query_one("#compare-table", DataTable).add_row(
            *variant_cells(event.variant, self.keys), key=str(event.variant.index)
        )
        self.query_one("#compare-progress", ProgressBar).advance(1)

    @on(CompareFinished)
    @when_attached
    def compare_finished(self, event: CompareFinished) -> None:
        self.running, self.finished, self.comparison = False, event, event.comparison
        self.remove_config()
        self.lock_options(False)
        self.show_result(event)

    def show_result(self, event: CompareFinished) -> None:
        """Status, recommendation and evaluation lines; the recommended row starred and highlighted."""
        comparison = event.comparison
        stage = self.query_one("#compare-stage", Static)
        table = self.query_one("#compare-table", DataTable)
        if event.exit_code == 130:
            stage.update(f"Stopped: {len(self.variants)} variant(s) measured.")
        elif event.exit_code != 0:
            stage.update(f"Failed (exit {event.exit_code}): {event.error}")
            self.notify(
                event.error or f"engine exited with {event.exit_code}",
                title="Compare failed",
                severity="error",
                timeout=10,
            )
        else:
            stage.update(f"Done: {comparison.run_dir if comparison else ''}")
            self.query_one("#compare-progress", ProgressBar).display = False  # the line's width for the folder
        if comparison is None:
            return
        if comparison.recommended is not None and str(comparison.recommended) in table.rows:
            table.update_cell(
                str(comparison.recommended), "index", f"{comparison.recommended}{STAR}", update_width=True
            )
            table.move_cursor(row=table.get_row_index(str(comparison.recommended)))
        self.query_one("#compare-info", Static).update(
            "\n".join(filter(None, [recommendation_text(comparison), evaluation_text(comparison)]))
        )
        if table.row_count:
            table.focus()
            self.show_detail()

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        """The highlighted variant's full settings and where its ranges came from (or why it failed)."""
        variant = self.highlighted_variant()
        if variant is None or self.running:
            return
        if variant.status != "ok":
            text = f"{variant.index}: {settings_text(variant)} failed: {variant.error}"
        else:
            ranges = "cached" if variant.statistics == "cache" else "computed"
            text = f"{variant.index}: {settings_text(variant)} · ranges {ranges} · {variant.seconds:.1f} s"
        self.query_one("#compare-detail", Static).update(text)

    def highlighted_variant(self) -> Variant | None:
        table = self.query_one("#compare-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((v for v in self.variants if str(v.index) == key), None)

    # ------------------------------------------------------------ adopt
    @on(DataTable.RowSelected)
    def selected(self) -> None:
        self.action_adopt()

    def action_adopt(self) -> None:
        """Adopt the highlighted variant; one whose agreement was not measured only once the user confirms."""
        variant = self.highlighted_variant()
        if self.running or variant is None:
            return
        if variant.status != "ok":
            self.notify(f"Variant {variant.index} failed; pick another.", severity="warning")
            return
        if variant.agreement is None:
            question = (
                f"Variant {variant.index} ({settings_text(variant)}) was not measured: no evaluation images "
                "(dataset.test_path, validation_path or training_path), so its accuracy is unknown. "
                "Adopt it anyway?"
            )
            wrapped = textwrap.fill(question, QUESTION_WIDTH)  # the dialog's label does not wrap
            self.app.push_screen(ConfirmScreen(wrapped), lambda yes: self.adopt(variant) if yes else None)
            return
        self.adopt(variant)

    def adopt(self, variant: Variant) -> None:
        """Write the variant's settings into the draft, then go back with what changed."""
        changes = self.app.adopt_settings(variant.settings)  # type: ignore[attr-defined]
        if changes:
            self.notify("\n".join(changes), title=f"Adopted variant {variant.index}", timeout=10)
        else:
            self.notify(f"Variant {variant.index} is what the config already says.", title="Nothing changed")
        self.dismiss(changes)

    def action_recover(self) -> None:
        """Recover the accuracy the highlighted variant lost (`stquant recover` with its settings)."""
        variant = self.highlighted_variant()
        if self.running or variant is None:
            return
        if variant.status != "ok" or variant.agreement is None:
            self.notify(f"Variant {variant.index} was not measured; pick another.", severity="warning")
            return
        agreement = f"agrees with the float model on {variant.agreement:.2f} %"
        now = f"Variant {variant.index} ({settings_text(variant)}) {agreement}."
        typed = self.target()
        target = Target(kind="agreement", value=DEFAULT_TARGET if typed is None else typed)
        self.app.recover(now, target, variant.settings)  # type: ignore[attr-defined]
