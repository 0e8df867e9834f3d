"""The run summary: one typed model for `run_summary.json`, the `result` event, the CLI table and the wizard.

Pydantic only (no TensorFlow), so the wizard imports it. Units are in each field's name or description:
accuracies are percentages (0-100), `difference` is in percentage points, sizes are KiB unless the name
says bytes, times are seconds. `stquant schema run-summary` prints the JSON Schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Status = Literal["running", "ok", "failed", "interrupted"]
Percent = float | None  # an alias: inside Accuracy the name `float` is a field


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunWarning(_Part):
    """A problem that did not stop the run (a diagnostic that failed, a preflight remark)."""

    stage: str = Field(
        description="stage that raised it, e.g. prepare, layer_errors, footprint, confusion_matrix, mlflow"
    )
    message: str = Field(description="one-line reason")


class Warns:
    """`warn()` for a record with a `warnings` list (run summary, comparison, sweep): each warning once."""

    if TYPE_CHECKING:  # each record declares the field itself, where its JSON puts it
        warnings: list[RunWarning]

    def warn(self, stage: str, message: str) -> None:
        """Record a warning once."""
        warning = RunWarning(stage=stage, message=message)
        if warning not in self.warnings:
            self.warnings.append(warning)


class Calibration(_Part):
    source: str = Field(
        description="config key of the calibration images (dataset.quantization_path, "
        "dataset.training_path) or 'random'"
    )
    images: int = Field(
        description="images the activation ranges were measured on (by the run that stored "
        "them, when they come from the cache)"
    )
    skipped: int = Field(description="calibration images skipped (undecodable)")
    statistics: Literal["computed", "cache"] = Field(
        "computed",
        description="where the activation ranges came from: computed on the images in this run, or "
        "read from the statistics cache (same model, images, preprocessing and method)",
    )
    quantized_model: Literal["converted", "cache"] = Field(
        "converted",
        description="where the quantized model came from: converted in this run, or (TFLite converter) read from the "
        "statistics cache, where an earlier run kept what the converter made of the same float graph with the same "
        "statistics, settings and library versions (TensorFlow is then not needed to quantize)",
    )


class Accuracy(_Part):
    """Top-1 accuracies of the float and/or quantized model on the same images."""

    set: str = Field(description="test_set, validation_set (evaluation images)")
    images: int = Field(description="number of images evaluated")
    float: Percent = Field(None, description="top-1 accuracy of the float model, percent (0-100)")
    quantized: Percent = Field(None, description="top-1 accuracy of the quantized model, percent (0-100)")
    agreement: Percent = Field(None, description="images where both models give the same top-1 class, percent (0-100)")
    difference: Percent = Field(None, description="quantized minus float accuracy, percentage points")
    runtime: dict[str, str] = Field(default_factory=dict, description="model (float|quantized) -> runtime used")
    per_class: dict[str, dict[str, Percent]] = Field(
        default_factory=dict,
        description="model (float|quantized) -> class name -> top-1 accuracy in percent (None: no image)",
    )


class LayerFootprint(_Part):
    op: str = Field(description="operator type (CONV_2D, Conv, ...)")
    name: str
    output_shape: list[int]
    macc: int = Field(description="multiply-accumulates")
    weight_bytes: int = Field(description="constant bytes the op reads, bytes")
    live_activation_bytes: int = Field(
        description="activation arena the op needs (up to the highest buffer alive while it runs), bytes"
    )
    cycles: int = Field(description="estimated Cortex-M7 cycles")
    time_share_pct: float = Field(description="share of the model's estimated cycles, percent (0-100)")


class PeakHint(_Part):
    layer: int = Field(description="index in layers of the layer whose buffers reach the activation RAM figure")
    buffers: str = Field(description="what is alive there, e.g. input 64x64x8 + output 64x64x48")
    input_size: int = Field(description="the model's input height, pixels (0: not a square image input)")
    smaller_input: int | None = Field(
        description="the next smaller input height that is a multiple of the network's total stride"
    )
    saving_kib: float | None = Field(description="activation RAM saved at smaller_input (replanned), KiB")


class BoardFit(_Part):
    board: str
    mcu: str
    core: str = Field(description="CPU core, e.g. Cortex-M7")
    mhz: int = Field(description="CPU clock as the board is wired, MHz")
    flash_kib: int = Field(description="board flash, KiB")
    ram_kib: int = Field(description="board RAM, KiB")
    weights_fit: bool
    activations_fit: bool = Field(description="the allocator's activation figure fits the board's RAM")
    verdict: str = Field(
        "",
        description="fits (even the upper bound does) | fits only with in-place overlap "
        "(tight) (only the allocator's figure does) | does not fit",
    )
    flash_headroom_kib: float = Field(description="flash minus weights, KiB (negative: does not fit)")
    flash_headroom_pct: float = Field(description="flash headroom, percent of the board's flash")
    ram_headroom_kib: float = Field(description="RAM minus activations, KiB (negative: does not fit)")
    ram_headroom_pct: float = Field(description="RAM headroom, percent of the board's RAM")
    ram_upper_headroom_kib: float | None = Field(
        None, description="RAM minus the activations' upper bound, KiB (negative: the upper bound does not fit)"
    )
    ram_upper_headroom_pct: float | None = Field(None, description="the same, percent of the board's RAM")
    estimated_inference_ms: float | None = Field(
        description="estimated inference time on this board, milliseconds (None: core not modelled)"
    )


class Footprint(_Part):
    """STM32Cube.AI-style figures of the model the run produced (or benchmarked)."""

    weights_flash_kib: float = Field(description="weights as stored, KiB")
    activation_ram_kib: float = Field(
        description="activation arena, inputs and outputs included, KiB, planned after `allocator`'s rules"
    )
    activation_ram_upper_kib: float | None = Field(
        None, description="the same with no buffer written over another (ST Edge AI Core 4.0.1's placement), KiB"
    )
    allocator: str = Field("", description="the code generator whose placement rules activation_ram_kib follows")
    macc: int = Field(description="multiply-accumulates per inference")
    params: int = Field(description="number of parameters")
    float_weights_kib: float = Field(description="the same weights in float32, KiB")
    float_activation_ram_kib: float = Field(description="the same activation plan in float32, KiB")
    cycles_m7: int = Field(description="estimated Cortex-M7 cycles per inference (board-independent)")
    estimated_inference_ms: float | None = Field(
        None, description="estimated inference time on benchmarking.board, milliseconds"
    )
    layers: list[LayerFootprint] = Field(default_factory=list)
    peak: PeakHint | None = Field(None, description="the layer that sets the activation RAM peak")
    board_fit: BoardFit | None = Field(None, description="set when benchmarking.board names a known board")


class LayerError(_Part):
    layer: str = Field(description="Keras layer (or ONNX node) name")
    op: str
    sqnr_db: float | None = Field(description="local SQNR in dB (None: the layer is exact)")


class RunSummary(Warns, _Part):
    """Everything a run reports; `run_summary.json` is this model's JSON."""

    schema_version: int = SCHEMA_VERSION
    status: Status = "running"
    operation_mode: str
    run_dir: str = Field(description="absolute path of the run folder")
    model: str | None = Field(None, description="absolute path of general.model_path")
    quantized_model: str | None = Field(None, description="absolute path of the quantized model written")
    calibration: Calibration | None = None
    optimization: dict[str, Any] | None = Field(None, description="what quantization.optimize/bias_correction changed")
    layer_errors: list[LayerError] | None = Field(None, description="worst layers first (lowest SQNR)")
    accuracy: Accuracy | None = None
    footprint: Footprint | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="stage -> seconds, in the order they ran")
    keras_loaded_by: list[str] = Field(
        default_factory=list,
        description="what needed the Keras model of general.model_path, in order (the first loaded it, within its "
        "stage): evaluate (its stage load_h5_model or load_keras_model), convert or optimize (stage calibration: the "
        "TFLite converter traced the model, or optimize/bias_correction transformed it), layer_errors (only when "
        "the stored config lists no layers: the report runs the converter's float graph), footprint; "
        "empty: not loaded (an ONNX model, or the converter's float model came from the statistics cache and no "
        "stage needed the Keras model)",
    )
    warnings: list[RunWarning] = Field(default_factory=list)
    failed_stage: str | None = Field(None, description="stage that was running when the run failed or stopped")
    error: str | None = Field(None, description="one-line reason of a failed or interrupted run")

    def to_json(self) -> str:
        """The text of `run_summary.json`."""
        return self.model_dump_json(indent=2)


def run_summary_schema() -> dict[str, Any]:
    """The JSON Schema of `run_summary.json` (and of the `result` event's `summary`)."""
    return RunSummary.model_json_schema()
