"""What the Compare screen offers and shows: the choices to vary, the table's cells and its two text lines.

Pure functions of the engine's typed `engine.run.comparison` models (no widgets). Settings are abbreviated
and sizes are given without their unit in the column titles so that the table fits 80 columns with
every offered key varied.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text

from engine.run.comparison import Comparison, Variant

# key -> (label on the screen, table column, [(value, shown), ...])
CHOICES: dict[str, tuple[str, str, list[tuple[Any, str]]]] = {
    "quantization.granularity": (
        "Granularity",
        "gran.",
        [("per_channel", "per_channel"), ("per_tensor", "per_tensor")],
    ),
    "quantization.optimize": ("Optimize", "opt.", [(False, "off"), (True, "on")]),
    "quantization.quantization_input_type": (
        "Input type",
        "input",
        [("uint8", "uint8"), ("int8", "int8"), ("float", "float")],
    ),
    "quantization.quantizer": ("Quantizer", "quant.", [("TFlite_converter", "TFLite"), ("Onnx_quantizer", "ONNX")]),
}
DEFAULT_TICKS = {
    ("quantization.granularity", "per_channel"),
    ("quantization.granularity", "per_tensor"),
    ("quantization.quantization_input_type", "uint8"),
    ("quantization.quantization_input_type", "int8"),
}
SHORT = {"per_channel": "channel", "per_tensor": "tensor", "TFlite_converter": "TFLite", "Onnx_quantizer": "ONNX"}
FIGURES = (
    ("acc %", "accuracy"),
    ("agr %", "agreement"),
    ("flash", "weights_flash_kib"),  # KiB (the title says)
    ("RAM", "activation_ram_kib"),
    ("ms", "estimated_inference_ms"),
)
STAR = "★"


def variant_count(choices: dict[str, list[Any]]) -> int:
    """How many variants the ticked values make (0 when nothing is ticked)."""
    ticked = [len(values) for values in choices.values() if values]
    return math.prod(ticked) if ticked else 0


def short(value: Any) -> str:
    """A setting as the table shows it (abbreviated to keep 80 columns)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return SHORT.get(str(value), str(value))


def figure(value: float | None) -> Text:
    """A measured figure, right-aligned, with the two decimals the engine keeps."""
    return Text("–" if value is None else f"{value:.2f}", justify="right")


def variant_cells(variant: Variant, keys: list[str]) -> list[str | Text]:
    """One table row: index, the varied settings, then the figures (or "failed")."""
    settings = [short(variant.settings.get(key)) for key in keys]
    if variant.status != "ok":
        return [str(variant.index), *settings, "failed", *(figure(None) for _ in FIGURES[1:])]
    return [str(variant.index), *settings, *(figure(getattr(variant, name)) for _, name in FIGURES)]


def settings_text(variant: Variant) -> str:
    """The variant's settings, full values, shortest key names (e.g. `input_type=int8`)."""
    return ", ".join(
        f"{key.split('.')[-1].removeprefix('quantization_')}={value}" for key, value in variant.settings.items()
    )


def recommendation_text(comparison: Comparison) -> str:
    """Why the starred variant (the engine's own line when none is recommended)."""
    if comparison.recommended is None:
        return comparison.recommendation
    return f"{STAR} recommended: agreement ≥ {comparison.target_agreement:g} %, then the least RAM, flash, time"


def evaluation_text(comparison: Comparison) -> str:
    """Where accuracy and agreement were measured, the float model's accuracy, the board."""
    if not comparison.evaluation_set:
        return (
            "accuracy and agreement not measured: no evaluation images (test_path, validation_path, "
            "training_path, or quantization images left by quantization_split)"
        )
    where = {"test_set": "test_path", "validation_set": "validation"}.get(comparison.evaluation_set, "held-out")
    floats = "" if comparison.float_accuracy is None else f" (float {comparison.float_accuracy:.2f} %)"
    board = f" · on {comparison.board}" if comparison.board else ""
    return f"{comparison.evaluation_images} {where} images{floats} · {comparison.calibration_images} calibration{board}"
