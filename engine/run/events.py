"""Progress events of a run and the reporters that show them (JSON lines, plain text, a terminal bar).

`JsonLinesReporter` writes the events of `engine.run.protocol`, one JSON object per line on stdout
(the wizard reads them); the protocol is described in docs/protocol.md.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from engine.common.native_output import terminal_stderr
from engine.run.comparison import Comparison, Variant
from engine.run.protocol import (
    ComparisonEvent,
    Event,
    LogEvent,
    ProgressEvent,
    RecoveryEvent,
    RecoveryStepEvent,
    ResultEvent,
    StageEvent,
    SweepCellEvent,
    SweepEvent,
    SweepProgressEvent,
    VariantEvent,
    wire,
)
from engine.run.recovery import Recovery, Step
from engine.run.summary import RunSummary
from engine.run.sweep_record import Cell, Sweep

PROGRESS_INTERVAL = 0.1


class Reporter:
    """Receives run events; subclasses decide how to show them. The base class shows nothing."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._last_progress = 0.0
        self._lock = threading.Lock()  # stages may report from a background thread

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def stage(self, name: str) -> None:
        """A new stage started."""

    def progress(self, stage: str, done: int, total: int) -> None:
        """`done` of `total` items processed; throttled to about 10 per second (the last always shown)."""
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self._show_progress(stage, done, total)

    def _show_progress(self, stage: str, done: int, total: int) -> None:
        pass

    def log(self, level: str, message: str) -> None:
        """A log message for the user."""

    def result(self, summary: RunSummary) -> None:
        """The run finished (ok, failed or interrupted) with this summary."""

    def variant(self, variant: Variant) -> None:
        """A variant of `stquant compare` was quantized and measured (or failed)."""

    def comparison(self, comparison: Comparison) -> None:
        """`stquant compare` finished (ok, failed or interrupted) with this comparison."""

    def recovery_step(self, step: Step) -> None:
        """A step of `stquant recover` was quantized and measured."""

    def recovery(self, recovery: Recovery) -> None:
        """`stquant recover` finished with this search (its run summary follows)."""

    def sweep_progress(self, progress: SweepProgressEvent) -> None:
        """`stquant sweep`: cells done / running / failed, with an ETA."""

    def sweep_cell(self, cell: Cell) -> None:
        """A cell of `stquant sweep` finished or was reused."""

    def sweep(self, sweep: Sweep) -> None:
        """`stquant sweep` finished (ok, failed or interrupted) with this record."""


class JsonLinesReporter(Reporter):
    """One JSON object per line: the events of `engine.run.protocol`."""

    def emit(self, event: Event) -> None:
        self._write(wire(event) + "\n")

    def stage(self, name: str) -> None:
        self.emit(StageEvent(name=name))

    def _show_progress(self, stage: str, done: int, total: int) -> None:
        self.emit(ProgressEvent(stage=stage, done=done, total=total))

    def log(self, level: str, message: str) -> None:
        self.emit(LogEvent(level=level, message=message))

    def result(self, summary: RunSummary) -> None:
        self.emit(ResultEvent(summary=summary))

    def variant(self, variant: Variant) -> None:
        self.emit(VariantEvent(variant=variant))

    def comparison(self, comparison: Comparison) -> None:
        self.emit(ComparisonEvent(comparison=comparison))

    def recovery_step(self, step: Step) -> None:
        self.emit(RecoveryStepEvent(step=step))

    def recovery(self, recovery: Recovery) -> None:
        self.emit(RecoveryEvent(recovery=recovery))

    def sweep_progress(self, progress: SweepProgressEvent) -> None:
        self.emit(progress)

    def sweep_cell(self, cell: Cell) -> None:
        self.emit(SweepCellEvent(cell=cell))

    def sweep(self, sweep: Sweep) -> None:
        self.emit(SweepEvent(sweep=sweep))


class PlainReporter(Reporter):
    """Human-readable lines on stderr (logs, stages, occasional progress)."""

    def __init__(self, stream: TextIO | None = None, bar: bool = False):
        super().__init__(stream or terminal_stderr())
        self.bar = bar

    def stage(self, name: str) -> None:
        self._write(f"== {name}\n")

    def _show_progress(self, stage: str, done: int, total: int) -> None:
        if self.bar:
            filled = int(30 * done / max(total, 1))
            end = "\n" if done >= total else ""
            self._write(f"\r  {stage} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}{end}")
        elif done >= total or done % max(1, total // 4) == 0:
            self._write(f"  {stage}: {done}/{total}\n")

    def log(self, level: str, message: str) -> None:
        prefix = "" if level == "INFO" else f"{level.lower()}: "
        self._write(f"{prefix}{message}\n")

    def variant(self, variant: Variant) -> None:
        if variant.status == "ok":
            self._write(
                f"variant {variant.index} ({variant.name}): agreement {variant.agreement} %, "
                f"RAM {variant.activation_ram_kib} KiB, flash {variant.weights_flash_kib} KiB\n"
            )
        else:
            self._write(f"variant {variant.index} ({variant.name}) failed: {variant.error}\n")

    def sweep_progress(self, progress: SweepProgressEvent) -> None:
        eta = "" if progress.eta_seconds is None else f", about {progress.eta_seconds:.0f} s left"
        self._write(
            f"sweep: {progress.done}/{progress.total} done, {progress.running} running, {progress.failed} failed{eta}\n"
        )

    def sweep_cell(self, cell: Cell) -> None:
        name = f"cell {cell.index} ({Path(cell.config).name}, {cell.variant})"
        if cell.status == "ok":
            self._write(f"{name}: {'reused' if cell.reused else 'ok'}\n")
        else:
            self._write(f"{name} {cell.status} in {cell.failed_stage}: {cell.error}\n")


class ReporterLogHandler(logging.Handler):
    """Forwards engine log records to a reporter as `log` events."""

    def __init__(self, reporter: Reporter, level: int = logging.INFO):
        super().__init__(level)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.log(record.levelname, record.getMessage())


def make_reporter(mode: str) -> Reporter:
    """Reporter for `--progress auto|plain|jsonl|none` (auto: a bar on a terminal, else plain)."""
    if mode == "jsonl":
        return JsonLinesReporter()
    if mode == "none":
        return Reporter()
    return PlainReporter(bar=mode == "auto" and sys.stderr.isatty())
