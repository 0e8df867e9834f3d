"""Summary step: what `run_summary.json` says (an `engine.run.summary.RunSummary`).

Key figures first, in one block that fits 80x24; then the per-layer tables, whose columns are
abbreviated to fit 80 columns (`f` shows a table full-screen with every column).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from engine.footprint.boards import FITS
from engine.run.summary import BoardFit, RunSummary
from stquant_tui.warning_list import TOGGLE, has_more, warning_lines
from stquant_tui.widgets.footer import KeyFooter

NAME_WIDTH = 21  # layer names are cut to this at 80 columns (full names: the full-screen table)
WIDE = 120  # from this terminal width on, the tables show every column and full names (the app's -wide)
LARGE_DROP_PT = 1.0  # an accuracy drop larger than this many points is flagged
# Emphasis that survives NO_COLOR (bold, reverse, the glyph in the text); the colour is extra.
BAD, GOOD, WARN = Style(bold=True, reverse=True, color="red"), Style(bold=True, color="green"), Style(bold=True)
STATUS = {"ok": ("✓ ok", GOOD), "failed": ("✗ failed", BAD), "interrupted": ("cancelled", WARN)}


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _pct(percent: float | None) -> str:
    """An accuracy, already in percent (0-100)."""
    return "–" if percent is None else f"{percent:.1f}%"


def _ratio(before: float | None, after: float | None) -> str:
    return f" ({before / after:.1f}x smaller)" if before and after else ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _change(points: float | None) -> Text:
    """An accuracy change in points: ▲ a gain, ▼ a drop (reversed and bold when larger than LARGE_DROP_PT)."""
    if points is None:
        return Text("")
    glyph = "▲" if points > 0 else "▼" if points < 0 else "="
    return Text(f" ({glyph} {points:+.1f} pt)", style=BAD if points < -LARGE_DROP_PT else "")


def _room(memory: str, left_kib: float, left_pct: float, capacity_kib: int, fits: bool) -> Text:
    """One memory on the board: what is left of it, or what the model needs against what the board has."""
    label = f"Board {memory:<10}"
    if fits:
        return Text(f"{label}{left_kib:,.1f} KiB free of {capacity_kib:,} ({left_pct:.1f}%)")
    return Text.assemble(label, (f"✗ needs {capacity_kib - left_kib:,.1f} KiB, the board has {capacity_kib:,}", BAD))


def _board_lines(fit: BoardFit) -> list[Text]:
    """The board's verdict (the engine's words, with a glyph that needs no colour), then flash and RAM left."""
    if not (fit.weights_fit and fit.activations_fit):
        verdict = Text("✗ does NOT fit", style=BAD)
    elif fit.verdict == FITS:
        verdict = Text(f"✓ {fit.verdict}", style=GOOD)
    else:  # fits only if the allocator overlaps buffers as the named release does
        verdict = Text(f"⚠ {fit.verdict}", style=WARN)
    return [
        Text.assemble(f"Board           {fit.board} ({fit.mcu}): ", verdict),
        _room("flash", fit.flash_headroom_kib, fit.flash_headroom_pct, fit.flash_kib, fit.weights_fit),
        _room("RAM", fit.ram_headroom_kib, fit.ram_headroom_pct, fit.ram_kib, fit.activations_fit),
    ]


def _path_lines(label: str, path: str, width: int | None) -> list[Text]:
    """`label` then `path`, continued on indented lines broken after a `/` (not inside a name) to fit `width`."""
    indent, lines = " " * len(label), [label]
    for part in re.split(r"(?<=/)", path):
        if width and len(lines[-1]) + len(part) > width and lines[-1] not in (label, indent):
            lines.append(indent)
        lines[-1] += part
    return [Text(line) for line in lines]


def key_figures(summary: RunSummary, expanded: bool = False, width: int | None = None) -> list[Text]:
    """The block shown first: status, accuracy, agreement, flash, RAM, board verdict, time, model, warnings
    (collapsed to the first few unless `expanded`); trouble is bold and reversed, with a ✗ or ▼. `width`: the
    columns the model's path may take (broken after a `/`)."""
    status, style = STATUS.get(summary.status, (summary.status, ""))
    total = sum(summary.timings.values())
    lines = [
        Text.assemble(
            (status, style),
            f"{f' at {summary.failed_stage}' if summary.failed_stage else ''}"
            f" · {summary.operation_mode} · {total:.1f} s",
        )
    ]
    acc, foot = summary.accuracy, summary.footprint
    if acc:
        lines.append(
            Text.assemble(
                f"Accuracy        {_pct(acc.float)} → {_pct(acc.quantized)}",
                _change(acc.difference),
                f" on {acc.images} images",
            )
        )
        if acc.agreement is not None:
            lines.append(Text(f"Agreement       {_pct(acc.agreement)} same top-1 class as the float model"))
    if foot:
        lines.append(
            Text(
                f"Weights flash   {_num(foot.float_weights_kib, 2)} → {_num(foot.weights_flash_kib, 2)} KiB"
                + _ratio(foot.float_weights_kib, foot.weights_flash_kib)
            )
        )
        lines.append(
            Text(
                f"Activation RAM  {_num(foot.float_activation_ram_kib, 2)} → "
                f"{_num(foot.activation_ram_kib, 2)} KiB"
                + _ratio(foot.float_activation_ram_kib, foot.activation_ram_kib)
                + (
                    ""
                    if foot.activation_ram_upper_kib is None
                    else f" · upper {_num(foot.activation_ram_upper_kib, 2)}"
                )
            )
        )
        fit = foot.board_fit
        if fit:
            lines += _board_lines(fit)
        time = fit.estimated_inference_ms if fit else foot.estimated_inference_ms
        if time is not None:
            where = f" on {fit.board} ({fit.core}, {fit.mhz} MHz)" if fit else ""
            lines.append(Text(f"Inference time  ~{time:,.2f} ms{where} (estimate)"))
    if summary.quantized_model:
        lines += _path_lines("Model           ", summary.quantized_model, width)
    warnings = [f"{w.stage}: {w.message}" for w in summary.warnings]
    lines += [Text(line, style=WARN) for line in warning_lines(warnings, expanded, shown=0)]
    if summary.error:
        lines.append(Text(f"✗ {summary.error}", style=BAD))
    return lines


def detail_lines(summary: RunSummary) -> list[str]:
    """What comes after the key figures: calibration and stage timings."""
    lines = []
    calib = summary.calibration
    if calib:
        lines.append(f"Calibration: {calib.images} images used, {calib.skipped} skipped ({calib.source})")
    if summary.timings:
        lines.append("Timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary.timings.items()))
    return lines


def fill_layers(table: DataTable, summary: RunSummary, full: bool) -> None:
    """Per-layer footprint: name, op, MACC, weights and activation bytes, time share (+ output, full names)."""
    table.clear(columns=True)
    columns = ["Layer", "Op", "MACC", "Wgt B", "Act B", "Time%"] + (["Output"] if full else [])
    table.add_columns(*columns)
    for layer in summary.footprint.layers if summary.footprint else []:
        row = [
            layer.name if full else _cut(layer.name, NAME_WIDTH),
            layer.op if full else layer.op[:14],
            _num(layer.macc),
            _num(layer.weight_bytes),
            _num(layer.live_activation_bytes),
            f"{layer.time_share_pct:.1f}",
        ]
        table.add_row(*row, *(["x".join(map(str, layer.output_shape))] if full else []))


def fill_errors(table: DataTable, summary: RunSummary, full: bool) -> None:
    """Per-layer error, worst first: layer, op, SQNR in dB."""
    table.clear(columns=True)
    table.add_columns("Layer", "Op", "SQNR dB")
    for item in summary.layer_errors or []:
        table.add_row(item.layer if full else _cut(item.layer, NAME_WIDTH + 10), item.op, _num(item.sqnr_db))


def _class_change(before: float | None, after: float | None) -> Text:
    if before is None or after is None:
        return Text("–", justify="right")
    change = _change(after - before)
    return Text(change.plain.strip(" ()").removesuffix(" pt"), style=change.style, justify="right")


def fill_classes(table: DataTable, summary: RunSummary, full: bool) -> None:
    """Per-class top-1 accuracy of each model measured, and the change, largest drop first."""
    table.clear(columns=True)
    per_class = summary.accuracy.per_class if summary.accuracy else {}
    models = [model for model in ("float", "quantized") if per_class.get(model)]
    if not models:
        return
    names = list(dict.fromkeys(name for model in models for name in per_class[model]))
    both = len(models) == 2

    def change(name: str) -> float:
        before, after = (per_class[model].get(name) for model in ("float", "quantized"))
        return after - before if before is not None and after is not None else float("inf")

    table.add_columns("Class", *(f"{model.capitalize()} %" for model in models), *(["Change pt"] if both else []))
    for name in sorted(names, key=change) if both else names:
        figures = [per_class[model].get(name) for model in models]
        table.add_row(
            name if full else _cut(name, NAME_WIDTH),
            *(Text(_pct(f).rstrip("%"), justify="right") for f in figures),
            *([_class_change(*figures)] if both else []),
        )


class TableScreen(ModalScreen[None]):
    """One summary table, full-screen, with every column and full names."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f,q", "dismiss(None)", "Close"),
        Binding("left", "scroll_columns(-8)", "Scroll ◀", priority=True),
        Binding("right", "scroll_columns(8)", "Scroll ▶", priority=True),
    ]
    # opaque, title on its own line: nothing of the wizard's step bar shows through
    DEFAULT_CSS = """
    TableScreen { background: $background; }
    TableScreen DataTable { height: 1fr; }
    TableScreen Label { width: 1fr; text-style: bold; background: $panel; }
    """

    def __init__(self, title: str, fill, summary: RunSummary) -> None:
        super().__init__()
        self.title_text, self.fill, self.summary = title, fill, summary

    def compose(self) -> ComposeResult:
        yield Label(self.title_text)
        yield DataTable(id="full-table", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.fill(self.query_one(DataTable), self.summary, True)
        self.call_after_refresh(self.refresh_bindings)  # the scroll keys, once the table's width is known

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The scroll keys only for a table wider than the screen."""
        return action != "scroll_columns" or self.query_one(DataTable).max_scroll_x > 0

    def action_scroll_columns(self, columns: int) -> None:
        table = self.query_one(DataTable)
        table.scroll_to(x=table.scroll_x + columns, animate=False)


class SummaryStep(VerticalScroll):
    step = "summary"
    can_focus = False
    BINDINGS: ClassVar[list[BindingType]] = [TOGGLE]
    TABLES: ClassVar[dict[str, tuple[str, Callable[[DataTable, RunSummary, bool], None]]]] = {
        "summary-layers": ("Per-layer footprint", fill_layers),
        "summary-classes": ("Per-class accuracy (largest drop first)", fill_classes),
        "summary-errors": ("Layers with the largest quantization error (lowest SQNR first)", fill_errors),
    }

    def __init__(self) -> None:
        super().__init__(id="step-summary", classes="step")
        self.summary: RunSummary | None = None
        self.error: str | None = None  # the wizard's own reason the run failed, when the summary has none
        self.expanded = False
        self.full = False  # the tables show every column and full names (at WIDE columns)

    def compose(self) -> ComposeResult:
        yield Static("", id="summary-status")
        yield Static("", id="summary-details")
        for table_id, (title, _) in self.TABLES.items():
            yield Label(f"{title} · f full screen", classes="table-title")
            yield DataTable(id=table_id, cursor_type="row", zebra_stripes=True)

    def show(self, summary: RunSummary, error: str | None = None) -> None:
        self.summary, self.error, self.expanded = summary, error, False
        self.show_status()
        self.refresh_bindings()
        self.query_one("#summary-details", Static).update("\n".join(detail_lines(summary)).replace("[", r"\["))
        self.fill_tables()
        self.scroll_home(animate=False)

    def fill_tables(self) -> None:
        """The tables: abbreviated to fit 80 columns, with every column and full names from WIDE columns on."""
        if self.summary is None:
            return
        self.full = self.app.size.width >= WIDE
        for title, (table_id, (_, fill)) in zip(self.query(".table-title"), self.TABLES.items()):
            table = self.query_one(f"#{table_id}", DataTable)
            fill(table, self.summary, self.full)
            table.display = title.display = table.row_count > 0
            table.styles.height = min(table.row_count + 1, 12)  # header + rows, scroll beyond

    def on_resize(self) -> None:
        """Fit the model's path again, and the tables when the terminal crosses WIDE columns."""
        self.show_status()
        if self.full != (self.app.size.width >= WIDE):
            self.fill_tables()

    def show_status(self) -> None:
        """The key figures, warnings collapsed unless `w` expanded them."""
        if self.summary is None:
            return
        width = self.scrollable_content_region.width or self.app.size.width - 4  # hidden: the terminal, less
        lines = key_figures(self.summary, self.expanded, width)  # padding and scrollbar
        if self.error and self.error != self.summary.error:
            lines.append(Text(f"✗ {self.error}", style=BAD))
        self.query_one("#summary-status", Static).update(Text("\n").join(lines))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "toggle_warnings":
            return self.summary is not None and has_more(self.summary.warnings)
        return True

    def action_toggle_warnings(self) -> None:
        """`w`: every warning, or only the first few again."""
        self.expanded = not self.expanded
        self.show_status()

    def page(self, direction: int) -> None:
        """PageUp/PageDown: the focused table if one is focused, else the whole summary."""
        focused = self.app.focused
        if isinstance(focused, DataTable) and focused in self.query(DataTable):
            (focused.action_page_down if direction > 0 else focused.action_page_up)()
        else:
            (self.action_page_down if direction > 0 else self.action_page_up)()

    def full_screen(self) -> None:
        """Open the focused table (else the per-layer footprint) full-screen."""
        if self.summary is None:
            return
        focused = self.app.focused
        table_id = focused.id if isinstance(focused, DataTable) and focused.id in self.TABLES else "summary-layers"
        title, fill = self.TABLES[table_id]
        self.app.push_screen(TableScreen(title, fill, self.summary))
