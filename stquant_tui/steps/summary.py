"""Summary step: what `run_summary.json` says, as text and tables."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pct(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.1f}%" if isinstance(value, (int, float)) and value <= 1 else _num(value)


def _change(before: Any, after: Any) -> str:
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and before:
        return f"{(after - before) / before * 100:+.0f}%"
    return ""


def summary_lines(summary: dict) -> list[str]:
    """The text part of the summary, one fact per line."""
    lines = [f"Status: {summary.get('status', '?')}  ·  mode {summary.get('operation_mode', '?')}"]
    lines.append(f"Quantized model: {summary.get('quantized_model') or '(none)'}")
    calib = summary.get("calibration") or {}
    if calib:
        lines.append(f"Calibration: {calib.get('images', '?')} images used, {calib.get('skipped', 0)} skipped"
                     f" ({calib.get('source', '?')})")
    timings = summary.get("timings") or {}
    if timings:
        lines.append("Timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()
                                               if isinstance(v, (int, float))))
    fit = (summary.get("footprint") or {}).get("board_fit")
    if fit:
        lines.append(f"Board fit: {fit if isinstance(fit, str) else ', '.join(f'{k}: {v}' for k, v in fit.items())}")
    return lines


class SummaryStep(VerticalScroll):
    step = "summary"
    can_focus = False

    def __init__(self) -> None:
        super().__init__(id="step-summary", classes="step")
        self.summary: dict = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="summary-status")
        yield Label("Before / after", classes="table-title")
        yield DataTable(id="summary-compare", cursor_type="row", zebra_stripes=True)
        yield Label("Per-layer footprint", classes="table-title")
        yield DataTable(id="summary-layers", cursor_type="row", zebra_stripes=True)
        yield Label("Layers with the largest quantization error (lowest SQNR first)", classes="table-title")
        yield DataTable(id="summary-errors", cursor_type="row", zebra_stripes=True)

    def show(self, summary: dict, error: str | None = None) -> None:
        self.summary = summary
        lines = summary_lines(summary) if summary else ["Status: failed (no summary)"]
        if error:
            lines.append(f"Error: {error}")
        self.query_one("#summary-status", Static).update("\n".join(lines))
        foot = summary.get("footprint") or {}
        acc = summary.get("accuracy") or {}
        compare = self.query_one("#summary-compare", DataTable)
        compare.clear(columns=True)
        compare.add_columns("Metric", "Float", "Quantized", "Change")
        if foot:
            compare.add_row("Weights flash (KiB)", _num(foot.get("float_weights_kib")),
                            _num(foot.get("weights_flash_kib")),
                            _change(foot.get("float_weights_kib"), foot.get("weights_flash_kib")))
            compare.add_row("Activation RAM (KiB)", _num(foot.get("float_activation_ram_kib")),
                            _num(foot.get("activation_ram_kib")),
                            _change(foot.get("float_activation_ram_kib"), foot.get("activation_ram_kib")))
            compare.add_row("MACC", _num(foot.get("macc")), _num(foot.get("macc")), "")
            compare.add_row("Parameters", _num(foot.get("params")), _num(foot.get("params")), "")
        if acc:
            before, after = acc.get("float"), acc.get("quantized")
            points = f"{(after - before) * 100:+.1f} pt" if isinstance(before, float) and isinstance(after, float) else ""
            compare.add_row("Accuracy", _pct(before), _pct(after), points)
            compare.add_row("Agreement", "", _pct(acc.get("agreement")), "")
        layers = self.query_one("#summary-layers", DataTable)
        layers.clear(columns=True)
        layers.add_columns("Op", "Name", "Output", "MACC", "Weights B", "Act. B")
        for layer in foot.get("layers") or []:
            shape = layer.get("output_shape")
            shape = "x".join(str(d) for d in shape) if isinstance(shape, list) else str(shape or "")
            layers.add_row(layer.get("op", ""), layer.get("name", ""), shape, _num(layer.get("macc")),
                           _num(layer.get("weight_bytes")), _num(layer.get("activation_bytes")))
        errors = self.query_one("#summary-errors", DataTable)
        errors.clear(columns=True)
        errors.add_columns("Layer", "Op", "SQNR (dB)")
        for item in summary.get("layer_errors") or []:
            errors.add_row(item.get("layer", ""), item.get("op", ""), _num(item.get("sqnr_db")))
        for table in (compare, layers, errors):
            table.display = table.row_count > 0
            table.styles.height = min(table.row_count + 1, 12)  # header + rows, scroll beyond
        for title, table in zip(self.query(".table-title"), (compare, layers, errors)):
            title.display = table.display
        self.scroll_home(animate=False)
