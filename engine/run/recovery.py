"""The record of `stquant recover`: one typed model for `recovery.json`, the `recovery_step` and `recovery` events
and the wizard.

Pydantic only (no TensorFlow). Units as in `engine.run.summary`: accuracies, agreement and drops in percent
(0-100) or points, sizes in KiB, times in milliseconds or seconds as named. `stquant schema recovery` prints the
JSON Schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # validators built when first used (not by a run)


class Target(_Part):
    """What the recovery must reach on the evaluation images."""

    kind: Literal["max_drop", "agreement"] = Field(
        description="max_drop: float accuracy minus int8 accuracy at most `value` points; "
        "agreement: top-1 agreement with the float model at least `value` percent"
    )
    value: float


class Budget(_Part):
    """What the mixed model may cost on the board (None: no limit)."""

    board: str | None = Field(None, description="the board the model must fit and the time is estimated on")
    max_ram_kib: float | None = Field(None, description="activation RAM limit, KiB")
    max_flash_kib: float | None = Field(None, description="weights flash limit, KiB")
    max_ms: float | None = Field(None, description="estimated inference time limit on the board, milliseconds")


class Step(_Part):
    """One quantization tried by the search, measured on the full evaluation set."""

    index: int = Field(description="position in the search, from 0 (the config as given)")
    remedy: str = Field(description="what this step changed, e.g. 'calibration_method=entropy' or 'float: conv2d_3'")
    settings: dict[str, Any] = Field(
        description="quantization.calibration_method, bias_correction and float_layers of this step"
    )
    kept: bool = Field(description="the search went on from this step (it helped and fits the budget)")
    quantized_model: str = Field(description="absolute path of this step's model")
    accuracy: float = Field(description="top-1 accuracy of the quantized model, percent (0-100)")
    agreement: float = Field(description="top-1 agreement with the float model, percent (0-100)")
    drop: float = Field(description="float accuracy minus this accuracy, points")
    weights_flash_kib: float
    activation_ram_kib: float
    estimated_inference_ms: float | None = Field(None, description="on the budget's board (None without one)")
    within_budget: bool
    meets_target: bool
    seconds: float = Field(description="time to quantize and measure this step, seconds")


class Recovery(_Part):
    """Everything `stquant recover` reports; `recovery.json` is this model's JSON."""

    schema_version: int = SCHEMA_VERSION
    status: Literal["running", "met", "not_met", "failed", "interrupted"] = "running"
    run_dir: str = Field(description="absolute path of the run folder")
    model: str = Field("", description="absolute path of general.model_path")
    quantizer: str = Field("", description="TFlite_converter or Onnx_quantizer")
    target: Target
    budget: Budget
    evaluation_source: str | None = Field(
        None, description="the config key of the evaluation images (dataset.test_path, validation_path, ...)"
    )
    evaluation_images: int = Field(0, description="images every step is measured on")
    ranking_images: int = Field(0, description="images the candidate layers are ranked on")
    float_accuracy: float | None = Field(None, description="top-1 accuracy of the float model, percent (0-100)")
    steps: list[Step] = Field(default_factory=list)
    best: int | None = Field(None, description="index of the step whose model is the result")
    evaluations: int = Field(0, description="quantized models evaluated (full set and ranking subset)")
    outcome: str = Field("", description="one line: the target met (how), or the best reached and what stopped it")


def recovery_schema() -> dict[str, Any]:
    """The JSON Schema of `recovery.json` (and of the `recovery` event's `recovery`)."""
    return Recovery.model_json_schema()
