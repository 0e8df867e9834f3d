"""Typed messages posted by the engine client and the background scans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

from engine.run.summary import RunSummary

if TYPE_CHECKING:
    from stquant_tui.verdict import Verdict


@dataclass
class RunStage(Message):
    """The engine started a stage."""

    name: str
    """Stage name, e.g. `calibration`."""


@dataclass
class RunProgress(Message):
    """Progress within a stage (queued updates collapse into the newest)."""

    stage: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress)


@dataclass
class RunLog(Message):
    """One log line from the engine (level INFO/WARNING/ERROR, or STDERR for raw child output)."""

    level: str
    message: str


@dataclass
class RunFinished(Message):
    """The engine exited."""

    exit_code: int
    summary: RunSummary | None = None
    """The `result` event's summary (None if the engine stopped before a run folder existed)."""
    error: str | None = None
    """The `error` event's message, or the last stderr line."""
    run_dir: str | None = None
    """The run folder path printed after the events."""
    cancelled: bool = False
    """The user asked the run to stop (an exit 130 is then no failure)."""


@dataclass
class InspectDone(Message):
    """`stquant inspect --json` finished for a model path."""

    path: str
    info: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class DatasetScanned(Message):
    """A class-folder scan finished."""

    key: str
    """Config key of the scanned folder."""
    path: str
    classes: list[str] = field(default_factory=list)
    images: int = 0
    other_files: int = 0
    error: str | None = None
    names: list[str] | None = None
    """`dataset.class_names` when scanned."""
    engine_says: list[str] = field(default_factory=list)
    """What `engine.data.dataset.scan` (the run's own check) reports: its error, or its warnings."""


@dataclass
class VerdictReady(Message):
    """`stquant validate` finished on a draft text."""

    key: str
    """What was checked (`StquantApp.check_key`): a verdict for an older text is dropped."""
    verdict: Verdict
