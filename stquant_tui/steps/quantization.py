"""Quantization step: operation mode, board, and the quantizer settings (ONNX-only ones shown for ONNX)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from engine.config.schema import EVALUATION_MODES, RUNNABLE_MODES
from engine.config.unused_keys import ONNX_ONLY
from engine.footprint.boards import BOARDS
from stquant_tui.steps.base import Step
from stquant_tui.widgets.fields import FieldRow
from stquant_tui.widgets.text import show_text


class QuantizationStep(Step):
    step = "quantization"

    def compose(self) -> ComposeResult:
        yield FieldRow(
            "operation_mode", "Operation mode", "select", choices=RUNNABLE_MODES, off_choice="not run by stquant"
        )
        yield Static("", id="quantization-hint", classes="feedback")
        yield FieldRow("benchmarking.board", "Board", "select", choices=list(BOARDS), off_choice="unknown board")
        yield FieldRow("quantization.quantizer", "Quantizer", "select")
        yield FieldRow("quantization.quantization_input_type", "Input type", "select")
        yield FieldRow("quantization.quantization_output_type", "Output type", "select")
        yield FieldRow("quantization.granularity", "Granularity", "select")
        yield FieldRow("quantization.optimize", "Optimize", "bool")
        yield FieldRow("quantization.bias_correction", "Bias correction", "bool")
        yield FieldRow("quantization.calibration_method", "Calibration", "select")
        yield FieldRow("quantization.target_opset", "Target opset (ONNX)", "number")
        yield FieldRow("quantization.extra_options", "Extra options (ONNX)", "select")
        yield FieldRow("quantization.export_dir", "Export dir", path=True)

    def is_onnx(self) -> bool:
        path = str(self.draft.get("general.model_path") or "")
        return path.lower().endswith(".onnx") or self.draft.get("quantization.quantizer") == "Onnx_quantizer"

    def draft_changed(self, key: str) -> None:
        if key not in ("", "operation_mode", "general.model_path", "quantization.quantizer"):
            return
        onnx = self.is_onnx()
        for name in ONNX_ONLY:
            self.query_one(f"#row-{name.replace('.', '-')}", FieldRow).display = (
                onnx or self.draft.get(name) is not None
            )
        mode = self.draft.get("operation_mode")
        notes = []
        if mode not in RUNNABLE_MODES:
            notes.append(f"⚠ {mode}: stquant saves it but cannot run it (Run needs {', '.join(RUNNABLE_MODES)})")
        if mode in EVALUATION_MODES:
            notes.append("evaluates float and int8 on the test folder (Dataset step)")
        hint = self.query_one("#quantization-hint", Static)
        show_text(hint, "\n".join(notes))
        hint.display = bool(notes)
