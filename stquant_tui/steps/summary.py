"""Summary step: what `run_summary.json` says (an `engine.run.summary.RunSummary`).

Key figures first, in one block that fits 80x24; then the per-layer tables, whose columns are
abbreviated to fit 80 columns (`f` shows a table full-screen with every column).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, Static

from engine.run.summary import RunSummary

NAME_WIDTH = 21  # layer names are cut to this at 80 columns (full names: the full-screen table)


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


def key_figures(summary: RunSummary) -> list[str]:
    """The block shown first: status, accuracy, agreement, flash, RAM, board verdict, time, warnings, model."""
    status = {"ok": "✓ ok", "failed": "✗ failed", "interrupted": "cancelled"}.get(summary.status, summary.status)
    total = sum(summary.timings.values())
    lines = [
        f"{status}{f' at {summary.failed_stage}' if summary.failed_stage else ''} · {summary.operation_mode}"
        f" · {total:.1f} s"
    ]
    acc, foot = summary.accuracy, summary.footprint
    if acc:
        change = "" if acc.difference is None else f" ({acc.difference:+.1f} pt)"  # percentage points
        lines.append(f"Accuracy        {_pct(acc.float)} → {_pct(acc.quantized)}{change} on {acc.images} images")
        if acc.agreement is not None:
            lines.append(f"Agreement       {_pct(acc.agreement)} same top-1 class as the float model")
    if foot:
        lines.append(
            f"Weights flash   {_num(foot.float_weights_kib, 2)} → {_num(foot.weights_flash_kib, 2)} KiB"
            + _ratio(foot.float_weights_kib, foot.weights_flash_kib)
        )
        lines.append(
            f"Activation RAM  {_num(foot.float_activation_ram_kib, 2)} → "
            f"{_num(foot.activation_ram_kib, 2)} KiB"
            + _ratio(foot.float_activation_ram_kib, foot.activation_ram_kib)
            + ("" if foot.activation_ram_upper_kib is None else f" · upper {_num(foot.activation_ram_upper_kib, 2)}")
        )
        fit = foot.board_fit
        if fit:
            lines.append(f"Board           {fit.board}: {fit.verdict}")
            lines.append(
                f"Headroom        flash {fit.flash_headroom_kib:+,.1f} KiB ({fit.flash_headroom_pct:+.1f}%)"
                f" · RAM {fit.ram_headroom_kib:+,.1f} KiB ({fit.ram_headroom_pct:+.1f}%)"
            )
        time = fit.estimated_inference_ms if fit else foot.estimated_inference_ms
        if time is not None:
            where = f" on {fit.board} ({fit.core}, {fit.mhz} MHz)" if fit else ""
            lines.append(f"Inference time  ~{time:,.2f} ms{where} (estimate)")
    if summary.quantized_model:
        lines.append(f"Model           {summary.quantized_model}")
    lines += [f"⚠ {w.stage}: {w.message}" for w in summary.warnings]
    if summary.error:
        lines.append(f"✗ {summary.error}")
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
            layer.op[:14],
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


class TableScreen(ModalScreen[None]):
    """One summary table, full-screen, with every column and full names."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f,q", "dismiss(None)", "Close")]
    DEFAULT_CSS = "TableScreen DataTable { height: 1fr; } TableScreen Label { text-style: bold; }"

    def __init__(self, title: str, fill, summary: RunSummary) -> None:
        super().__init__()
        self.title_text, self.fill, self.summary = title, fill, summary

    def compose(self) -> ComposeResult:
        yield Label(self.title_text)
        yield DataTable(id="full-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.fill(self.query_one(DataTable), self.summary, True)


class SummaryStep(VerticalScroll):
    step = "summary"
    can_focus = False
    TABLES: ClassVar[dict[str, tuple[str, Callable[[DataTable, RunSummary, bool], None]]]] = {
        "summary-layers": ("Per-layer footprint", fill_layers),
        "summary-errors": ("Layers with the largest quantization error (lowest SQNR first)", fill_errors),
    }

    def __init__(self) -> None:
        super().__init__(id="step-summary", classes="step")
        self.summary: RunSummary | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="summary-status")
        yield Static("", id="summary-details")
        for table_id, (title, _) in self.TABLES.items():
            yield Label(f"{title} · f full screen", classes="table-title")
            yield DataTable(id=table_id, cursor_type="row", zebra_stripes=True)

    def show(self, summary: RunSummary, error: str | None = None) -> None:
        self.summary = summary
        lines = key_figures(summary)
        if error and error != summary.error:
            lines.append(f"✗ {error}")
        self.query_one("#summary-status", Static).update("\n".join(lines).replace("[", r"\["))
        self.query_one("#summary-details", Static).update("\n".join(detail_lines(summary)).replace("[", r"\["))
        for title, (table_id, (_, fill)) in zip(self.query(".table-title"), self.TABLES.items()):
            table = self.query_one(f"#{table_id}", DataTable)
            fill(table, summary, False)
            table.display = title.display = table.row_count > 0
            table.styles.height = min(table.row_count + 1, 12)  # header + rows, scroll beyond
        self.scroll_home(animate=False)

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
