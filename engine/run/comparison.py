"""The comparison of `stquant compare`: one typed model for `comparison.json`, the `variant` and
`comparison` events and the wizard's Compare screen.

Pydantic only (no TensorFlow). Units as in `engine.run.summary`: accuracies and agreement in percent
(0-100), sizes in KiB, times in milliseconds or seconds as named. `stquant schema comparison` prints
the JSON Schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.run.summary import RunWarning, Warns

SCHEMA_VERSION = 1


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # validators built when first used (not by a run)


class Variant(_Part):
    """One combination of the varied settings, quantized and measured."""

    index: int = Field(description="position in the comparison, from 0")
    name: str = Field(description="the varied settings, e.g. 'granularity=per_tensor, optimize=True'")
    settings: dict[str, Any] = Field(description="varied config key (e.g. quantization.granularity) -> value")
    status: Literal["ok", "failed"]
    error: str | None = Field(None, description="one-line reason when the variant failed")
    quantized_model: str | None = Field(None, description="absolute path of the quantized model")
    accuracy: float | None = Field(None, description="top-1 accuracy of the quantized model, percent (0-100)")
    agreement: float | None = Field(
        None, description="images where the quantized and the float model give the same top-1 class, percent (0-100)"
    )
    weights_flash_kib: float | None = Field(None, description="weights flash, KiB")
    activation_ram_kib: float | None = Field(None, description="activation RAM (inputs and outputs included), KiB")
    estimated_inference_ms: float | None = Field(
        None, description="estimated inference time on --board, milliseconds (None without a board)"
    )
    statistics: Literal["computed", "cache"] = Field(
        "computed",
        description="where the activation ranges came "
        "from: computed in this comparison, or the statistics cache "
        "(also when an earlier variant computed them)",
    )
    meets_target: bool | None = Field(None, description="agreement >= target_agreement (None: not measured)")
    seconds: float = Field(0.0, description="time to quantize and measure this variant, seconds")


class Comparison(Warns, _Part):
    """Everything `stquant compare` reports; `comparison.json` is this model's JSON."""

    schema_version: int = SCHEMA_VERSION
    status: Literal["running", "ok", "failed", "interrupted"] = "running"
    run_dir: str = Field(description="absolute path of the comparison folder")
    model: str = Field(description="absolute path of general.model_path")
    varied: dict[str, list[Any]] = Field(description="each varied key -> its values, in the order given")
    board: str | None = Field(None, description="--board (or benchmarking.board) used for the inference time")
    target_agreement: float = Field(description="agreement a variant must reach to be recommended, percent")
    evaluation_set: str | None = Field(
        None,
        description="test_set or validation_set: the images `stquant run` "
        "evaluates the same config on; None: not measured (no "
        "evaluation images)",
    )
    evaluation_source: str | None = Field(
        None,
        description="the config key of the evaluation images: "
        "dataset.test_path, dataset.validation_path or "
        "dataset.validation_split (the validation split of "
        "dataset.training_path)",
    )
    evaluation_images: int = Field(0, description="number of images accuracy and agreement are measured on")
    calibration_images: int = Field(0, description="number of calibration images")
    float_accuracy: float | None = Field(None, description="top-1 accuracy of the float model, percent (0-100)")
    variants: list[Variant] = Field(default_factory=list)
    recommended: int | None = Field(
        None,
        description="index of the recommended variant: among those meeting the "
        "target, the smallest activation RAM, then flash, then time",
    )
    recommendation: str = Field("", description="one line saying why (or why no variant is recommended)")
    timings: dict[str, float] = Field(default_factory=dict, description="stage -> seconds, in the order they ran")
    warnings: list[RunWarning] = Field(default_factory=list)
    failed_stage: str | None = Field(None, description="stage that was running when the comparison failed or stopped")
    error: str | None = Field(None, description="one-line reason of a failed or interrupted comparison")


def comparison_schema() -> dict[str, Any]:
    """The JSON Schema of `comparison.json` (and of the `comparison` event's `comparison`)."""
    return Comparison.model_json_schema()
