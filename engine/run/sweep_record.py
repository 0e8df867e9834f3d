"""The record of `stquant sweep`: one typed model for `sweep.json`, the `sweep_cell` and `sweep` events.

Pydantic only (no TensorFlow). Every figure of a cell is read from its run folder's `run_summary.json`
(an `engine.run.summary.RunSummary`); units as there: accuracies and agreement in percent (0-100), sizes in
KiB, times in milliseconds or seconds as named. `stquant schema sweep` prints the JSON Schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.run.summary import RunWarning, Warns

SCHEMA_VERSION = 1


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # validators built when first used (not by a run)


class Cell(_Part):
    """One config with one combination of the varied values: one `stquant run` folder."""

    index: int = Field(description="position in the sweep, from 0 (configs in the order given, then variants)")
    config: str = Field(description="absolute path of the config file")
    variant: str = Field(description="the varied settings, e.g. 'granularity=per_tensor' ('as given': no --vary)")
    overrides: list[str] = Field(description="key.path=value overrides of this cell (the command's, then its variant)")
    run_dir: str = Field(description="absolute path of the cell's run folder (a normal stquant run folder)")
    config_hash: str = Field("", description="SHA-256 of the resolved config (the run folder's config.yaml)")
    code_version: str = Field("", description="stquant version that ran the cell")
    status: Literal["pending", "ok", "failed", "interrupted"] = "pending"
    reused: bool = Field(False, description="--resume found this cell finished (same config and version): not rerun")
    attempts: int = Field(0, description="times the cell was started in this sweep (2: a lost worker was retried)")
    worker: str | None = Field(None, description="host:pid of the worker process that ran the cell (last attempt)")
    operation_mode: str | None = None
    quantized_model: str | None = Field(None, description="absolute path of the quantized model")
    float_accuracy: float | None = Field(None, description="top-1 accuracy of the float model, percent (0-100)")
    int8_accuracy: float | None = Field(None, description="top-1 accuracy of the quantized model, percent (0-100)")
    agreement: float | None = Field(None, description="top-1 agreement of the float and quantized models, percent")
    weights_flash_kib: float | None = Field(None, description="weights flash of the quantized model, KiB")
    activation_ram_kib: float | None = Field(None, description="activation RAM of the quantized model, KiB")
    board: str | None = Field(None, description="benchmarking.board the time is estimated on")
    estimated_inference_ms: float | None = Field(None, description="estimated inference time on `board`, ms")
    failed_stage: str | None = Field(None, description="stage that was running when the cell failed or stopped")
    error: str | None = Field(None, description="one-line reason of a failed or interrupted cell")
    seconds: float = Field(0.0, description="wall time of the cell's run, seconds")


class Sweep(Warns, _Part):
    """Everything `stquant sweep` reports; `sweep.json` is this model's JSON."""

    schema_version: int = SCHEMA_VERSION
    status: Literal["running", "ok", "failed", "interrupted"] = Field(
        "running", description="ok: every cell ok; failed: a cell (or the sweep) failed; interrupted: Ctrl-C"
    )
    run_dir: str = Field(description="absolute path of the sweep folder")
    code_version: str = Field(description="stquant version of this sweep")
    executor: Literal["local", "ray"]
    jobs: int = Field(description="cells run at once (local) or Ray's CPUs per cell budget (ray)")
    address: str | None = Field(None, description="Ray cluster address (None: a local cluster started for it)")
    varied: dict[str, list[Any]] = Field(default_factory=dict, description="each --vary key -> its values")
    cells: list[Cell] = Field(default_factory=list)
    done: int = Field(0, description="cells finished ok (reused ones included)")
    failed: int = Field(0, description="cells that failed")
    reused: int = Field(0, description="cells --resume found finished")
    seconds: float = Field(0.0, description="wall time of the sweep, seconds")
    timings: dict[str, float] = Field(default_factory=dict, description="stage -> seconds, in the order they ran")
    warnings: list[RunWarning] = Field(default_factory=list)
    failed_stage: str | None = Field(None, description="stage that was running when the sweep itself stopped")
    error: str | None = Field(None, description="one-line reason when the sweep itself failed or was interrupted")


def sweep_schema() -> dict[str, Any]:
    """The JSON Schema of `sweep.json` (and of the `sweep` event's `sweep`)."""
    return Sweep.model_json_schema()
