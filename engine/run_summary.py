"""The run summary: one typed model for `run_summary.json`, the `result` event, the CLI table and the wizard.

Pydantic only (no TensorFlow), so the wizard imports it. Units are in each field's name or description:
accuracies are percentages (0-100), `difference` is in percentage points, sizes are KiB unless the name
says bytes, times are seconds. `stquant schema run-summary` prints the JSON Schema.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Status = Literal["running", "ok", "failed", "interrupted"]
Percent = Optional[float]  # an alias: inside Accuracy the name `float` is a field


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunWarning(_Part):
    """A problem that did not stop the run (a diagnostic that failed, a preflight remark)."""

    stage: str = Field(description="stage that raised it, e.g. prepare, layer_errors, footprint, mlflow")
    message: str = Field(description="one-line reason")


class Calibration(_Part):
    source: str = Field(description="config key of the calibration images (dataset.quantization_path, "
                                    "dataset.training_path) or 'random'")
    images: int = Field(description="images the activation ranges were measured on (by the run that stored "
                                    "them, when they come from the cache)")
    skipped: int = Field(description="calibration images skipped (undecodable)")
    statistics: Literal["computed", "cache"] = Field(
        "computed", description="where the activation ranges came from: computed on the images in this run, or "
                                "read from the statistics cache (same model, images, preprocessing and method)")


class Accuracy(_Part):
    """Top-1 accuracies of the float and/or quantized model on the same images."""

    set: str = Field(description="test_set, validation_set (evaluation images)")
    images: int = Field(description="number of images evaluated")
    float: Percent = Field(None, description="top-1 accuracy of the float model, percent (0-100)")
    quantized: Percent = Field(None, description="top-1 accuracy of the quantized model, percent (0-100)")
    agreement: Percent = Field(None, description="images where both models give the same top-1 class, "
                                                         "percent (0-100)")
    difference: Percent = Field(None, description="quantized minus float accuracy, percentage points")
    runtime: dict[str, str] = Field(default_factory=dict, description="model (float|quantized) -> runtime used")
    per_class: dict[str, dict[str, Percent]] = Field(
        default_factory=dict,
        description="model (float|quantized) -> class name -> top-1 accuracy in percent (None: no image)")


class LayerFootprint(_Part):
    op: str = Field(description="operator type (CONV_2D, Conv, ...)")
    name: str
    output_shape: list[int]
    macc: int = Field(description="multiply-accumulates")
    weight_bytes: int = Field(description="constant bytes the op reads, bytes")
    live_activation_bytes: int = Field(description="activation arena the op needs (up to the highest buffer alive "
                                                   "while it runs), bytes")
    cycles: int = Field(description="estimated Cortex-M7 cycles")
    time_share_pct: float = Field(description="share of the model's estimated cycles, percent (0-100)")


class BoardFit(_Part):
    board: str
    mcu: str
    core: str = Field(description="CPU core, e.g. Cortex-M7")
    mhz: int = Field(description="CPU clock as the board is wired, MHz")
    flash_kib: int = Field(description="board flash, KiB")
    ram_kib: int = Field(description="board RAM, KiB")
    weights_fit: bool
    activations_fit: bool
    flash_headroom_kib: float = Field(description="flash minus weights, KiB (negative: does not fit)")
    flash_headroom_pct: float = Field(description="flash headroom, percent of the board's flash")
    ram_headroom_kib: float = Field(description="RAM minus activations, KiB (negative: does not fit)")
    ram_headroom_pct: float = Field(description="RAM headroom, percent of the board's RAM")
    estimated_inference_ms: Optional[float] = Field(description="estimated inference time on this board, "
                                                                "milliseconds (None: core not modelled)")


class Footprint(_Part):
    """STM32Cube.AI-style figures of the model the run produced (or benchmarked)."""

    weights_flash_kib: float = Field(description="weights as stored, KiB")
    activation_ram_kib: float = Field(description="activation arena, inputs and outputs included, KiB")
    macc: int = Field(description="multiply-accumulates per inference")
    params: int = Field(description="number of parameters")
    float_weights_kib: float = Field(description="the same weights in float32, KiB")
    float_activation_ram_kib: float = Field(description="the same activation plan in float32, KiB")
    cycles_m7: int = Field(description="estimated Cortex-M7 cycles per inference (board-independent)")
    estimated_inference_ms: Optional[float] = Field(None, description="estimated inference time on "
                                                                      "benchmarking.board, milliseconds")
    layers: list[LayerFootprint] = Field(default_factory=list)
    board_fit: Optional[BoardFit] = Field(None, description="set when benchmarking.board names a known board")


class LayerError(_Part):
    layer: str = Field(description="Keras layer (or ONNX node) name")
    op: str
    sqnr_db: Optional[float] = Field(description="local SQNR in dB (None: the layer is exact)")


class RunSummary(_Part):
    """Everything a run reports; `run_summary.json` is this model's JSON."""

    schema_version: int = SCHEMA_VERSION
    status: Status = "running"
    operation_mode: str
    run_dir: str = Field(description="absolute path of the run folder")
    model: Optional[str] = Field(None, description="absolute path of general.model_path")
    quantized_model: Optional[str] = Field(None, description="absolute path of the quantized model written")
    calibration: Optional[Calibration] = None
    optimization: Optional[dict] = Field(None, description="what quantization.optimize/bias_correction changed")
    layer_errors: Optional[list[LayerError]] = Field(None, description="worst layers first (lowest SQNR)")
    accuracy: Optional[Accuracy] = None
    footprint: Optional[Footprint] = None
    timings: dict[str, float] = Field(default_factory=dict, description="stage -> seconds, in the order they ran")
    warnings: list[RunWarning] = Field(default_factory=list)
    failed_stage: Optional[str] = Field(None, description="stage that was running when the run failed or stopped")
    error: Optional[str] = Field(None, description="one-line reason of a failed or interrupted run")

    def to_json(self) -> str:
        """The text of `run_summary.json`."""
        return self.model_dump_json(indent=2)

    def warn(self, stage: str, message: str) -> None:
        """Record a warning once."""
        warning = RunWarning(stage=stage, message=message)
        if warning not in self.warnings:
            self.warnings.append(warning)


def run_summary_schema() -> dict:
    """The JSON Schema of `run_summary.json` (and of the `result` event's `summary`)."""
    return RunSummary.model_json_schema()
