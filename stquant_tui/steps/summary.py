"""Summary step: what `run_summary.json` says (an `engine.run_summary.RunSummary`), as text and tables."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from engine.run_summary import RunSummary


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _pct(percent: float | None) -> str:
    """An accuracy, already in percent (0-100)."""
    return "–" if percent is None else f"{percent:.1f}%"


def _change(before: float | None, after: float | None) -> str:
    if before and after is not None:
        return f"{(after - before) / before * 100:+.0f}%"
    return ""


def summary_lines(summary: RunSummary) -> list[str]:
    """The text part of the summary, one fact per line."""
    status = summary.status + (f" at {summary.failed_stage}" if summary.failed_stage else "")
    lines = [f"Status: {status}  ·  mode {summary.operation_mode}"]
    lines.append(f"Quantized model: {summary.quantized_model or '(none)'}")
    calib = summary.calibration
    if calib:
        lines.append(f"Calibration: {calib.images} images used, {calib.skipped} skipped ({calib.source})")
    if summary.timings:
        lines.append("Timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary.timings.items()))
    fit = summary.footprint.board_fit if summary.footprint else None
    if fit:
        lines.append("Board fit: " + ", ".join(f"{k}: {v}" for k, v in fit.model_dump().items()))
    lines += [f"Warning ({w.stage}): {w.message}" for w in summary.warnings]
    return lines


class SummaryStep(VerticalScroll):
    step = "summary"
    can_focus = False

    def __init__(self) -> None:
        super().__init__(id="step-summary", classes="step")
        self.summary: RunSummary | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="summary-status")
        yield Label("Before / after", classes="table-title")
        yield DataTable(id="summary-compare", cursor_type="row", zebra_stripes=True)
        yield Label("Per-layer footprint", classes="table-title")
        yield DataTable(id="summary-layers", cursor_type="row", zebra_stripes=True)
        yield Label("Layers with the largest quantization error (lowest SQNR first)", classes="table-title")
        yield DataTable(id="summary-errors", cursor_type="row", zebra_stripes=True)

    def show(self, summary: RunSummary, error: str | None = None) -> None:
        self.summary = summary
        lines = summary_lines(summary)
        if error:
            lines.append(f"Error: {error}")
        self.query_one("#summary-status", Static).update("\n".join(lines))
        compare = self.query_one("#summary-compare", DataTable)
        compare.clear(columns=True)
        compare.add_columns("Metric", "Float", "Quantized", "Change")
        foot, acc = summary.footprint, summary.accuracy
        if foot:
            compare.add_row("Weights flash (KiB)", _num(foot.float_weights_kib), _num(foot.weights_flash_kib),
                            _change(foot.float_weights_kib, foot.weights_flash_kib))
            compare.add_row("Activation RAM (KiB)", _num(foot.float_activation_ram_kib), _num(foot.activation_ram_kib),
                            _change(foot.float_activation_ram_kib, foot.activation_ram_kib))
            compare.add_row("MACC", _num(foot.macc), _num(foot.macc), "")
            compare.add_row("Parameters", _num(foot.params), _num(foot.params), "")
        if acc:
            points = "" if acc.difference is None else f"{acc.difference:+.1f} pt"  # percentage points
            compare.add_row("Accuracy", _pct(acc.float), _pct(acc.quantized), points)
            compare.add_row("Agreement", "", _pct(acc.agreement), "")
        layers = self.query_one("#summary-layers", DataTable)
        layers.clear(columns=True)
        layers.add_columns("Op", "Name", "Output", "MACC", "Weights B", "Act. B")
        for layer in foot.layers if foot else []:
            layers.add_row(layer.op, layer.name, "x".join(str(d) for d in layer.output_shape), _num(layer.macc),
                           _num(layer.weight_bytes), _num(layer.live_activation_bytes))
        errors = self.query_one("#summary-errors", DataTable)
        errors.clear(columns=True)
        errors.add_columns("Layer", "Op", "SQNR (dB)")
        for item in summary.layer_errors or []:
            errors.add_row(item.layer, item.op, _num(item.sqnr_db))
        for table in (compare, layers, errors):
            table.display = table.row_count > 0
            table.styles.height = min(table.row_count + 1, 12)  # header + rows, scroll beyond
        for title, table in zip(self.query(".table-title"), (compare, layers, errors)):
            title.display = table.display
        self.scroll_home(animate=False)
