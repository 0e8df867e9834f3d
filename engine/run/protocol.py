"""The JSON-lines progress protocol of `stquant run|compare|recover|sweep --progress jsonl`: a pydantic model
per event.

Pydantic only (no TensorFlow), so the wizard parses with it. Fields and exit codes: docs/protocol.md;
`stquant schema events` prints the JSON Schema of `Event`.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from engine.run.comparison import Comparison, Variant
from engine.run.recovery import Recovery, Step
from engine.run.summary import RunSummary
from engine.run.sweep_record import Cell, Sweep


class _Event(BaseModel):
    # `event` required in the JSON Schema; each event's validator is built when first used (a run emits few kinds)
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True, defer_build=True)


class StageEvent(_Event):
    """A stage started."""

    event: Literal["stage"] = "stage"
    name: str = Field(description="stage name, e.g. prepare, calibration, evaluate_float, variant_0")


class ProgressEvent(_Event):
    """Items done within a stage (at most about 10 per second; the last, done == total, always sent)."""

    event: Literal["progress"] = "progress"
    stage: str = Field(description="the stage these items belong to")
    done: int = Field(description="items processed so far")
    total: int = Field(description="items in the stage")


class LogEvent(_Event):
    """A log message for the user (also in the run folder's stquant.log)."""

    event: Literal["log"] = "log"
    level: str = Field(description="INFO, WARNING or ERROR")
    message: str


class ResultEvent(_Event):
    """`stquant run` is over (ok, failed or interrupted); `summary` is what run_summary.json holds."""

    event: Literal["result"] = "result"
    summary: RunSummary


class ErrorEvent(_Event):
    """The command did not succeed: the last event, the same line as on stderr (without `stquant: `)."""

    event: Literal["error"] = "error"
    message: str = Field(description="one-line reason (several lines for an invalid config: one per problem)")
    exit_code: int = Field(
        description="the process exit code: 1 engine failure, 2 invalid config or usage, "
        "3 missing or unwritable input/output, 130 interrupted"
    )


class VariantEvent(_Event):
    """`stquant compare`: one variant was quantized and measured (or failed)."""

    event: Literal["variant"] = "variant"
    variant: Variant


class ComparisonEvent(_Event):
    """`stquant compare` is over (ok, failed or interrupted); `comparison` is what comparison.json holds."""

    event: Literal["comparison"] = "comparison"
    comparison: Comparison


class RecoveryStepEvent(_Event):
    """`stquant recover`: one step of the search was quantized and measured on the evaluation images."""

    event: Literal["recovery_step"] = "recovery_step"
    step: Step


class RecoveryEvent(_Event):
    """`stquant recover` is over; `recovery` is what recovery.json holds (the `result` event follows)."""

    event: Literal["recovery"] = "recovery"
    recovery: Recovery


class SweepProgressEvent(_Event):
    """`stquant sweep`: the cells so far (sent when a cell is submitted or ends)."""

    event: Literal["sweep_progress"] = "sweep_progress"
    total: int = Field(description="cells in the sweep")
    done: int = Field(description="cells finished ok (reused ones included)")
    running: int = Field(description="cells started and not finished (at most the workers' number)")
    failed: int = Field(description="cells that failed")
    eta_seconds: float | None = Field(description="estimated seconds left (None until a cell has finished)")


class SweepCellEvent(_Event):
    """`stquant sweep`: one cell finished (ok, failed, interrupted) or was reused by --resume."""

    event: Literal["sweep_cell"] = "sweep_cell"
    cell: Cell


class SweepEvent(_Event):
    """`stquant sweep` is over (ok, failed or interrupted); `sweep` is what sweep.json holds."""

    event: Literal["sweep"] = "sweep"
    sweep: Sweep


Event = Annotated[
    StageEvent
    | ProgressEvent
    | LogEvent
    | ResultEvent
    | ErrorEvent
    | VariantEvent
    | ComparisonEvent
    | RecoveryStepEvent
    | RecoveryEvent
    | SweepProgressEvent
    | SweepCellEvent
    | SweepEvent,
    Field(discriminator="event"),
]
EVENTS: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))  # built at the first parse


def parse_event(line: str) -> Event:
    """The event of one JSON line; raises pydantic.ValidationError when it is not one."""
    return EVENTS.validate_json(line)


def wire(event: Event) -> str:
    """One event as its JSON line (without the newline), spaced as `json.dumps` spaces it."""
    return json.dumps(event.model_dump(mode="json"))


def events_schema() -> dict[str, object]:
    """The JSON Schema of every event as the engine writes it (`stquant schema events`)."""
    return EVENTS.json_schema(mode="serialization")
