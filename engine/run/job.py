"""What every kind of run shares (`stquant run`, `compare`, `sweep`): its folder, its stages, Ctrl-C/SIGTERM,
its logs and its final record (`RunSummary` or `Comparison`), written whatever happens.

A `Job` subclass says what its record is, how it is written and announced; `perform()` does the rest:
the engine's logs go to the run folder's stquant.log and the reporter, native stderr to stquant.log, the
first SIGINT/SIGTERM stops the stages (exit 130, status interrupted), a failure is recorded with the stage
it happened in, and the record is always written (atomically) and announced as the last event.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from engine.common.errors import Interrupted, OutputError, StquantError, first_line, output_error
from engine.common.native_output import native_stderr_to
from engine.run.comparison import Comparison
from engine.run.events import Reporter, ReporterLogHandler
from engine.run.summary import RunSummary
from engine.run.sweep_record import Sweep

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted: no partial model was kept"
Record = RunSummary | Comparison | Sweep


class Job:
    """The stages of one run and their record; subclasses implement `save` and `announce`."""

    def __init__(self, reporter: Reporter, run_dir: Path, record: Record) -> None:
        self.reporter = reporter
        self.run_dir = run_dir
        self.record = record
        self.signals = _Signals()
        self._started: str | None = None  # the last stage started
        self._failed: str | None = None  # the last stage that raised (None once a diagnostic absorbed it)

    def save(self) -> None:
        """Write the record into the run folder (atomically)."""
        raise NotImplementedError

    def announce(self) -> None:
        """Send the record as the run's last event."""
        raise NotImplementedError

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and announce it; remember it if it raises (an interrupt may land right after the event)."""
        self._started = name
        start = time.perf_counter()
        try:
            if self.signals.noted:
                raise KeyboardInterrupt
            self.reporter.stage(name)
            yield
        except BaseException:
            self._failed = name
            raise
        finally:
            self.record.timings[name] = round(time.perf_counter() - start, 3)

    @contextlib.contextmanager
    def diagnostic(self, name: str) -> Iterator[None]:
        """A stage whose failure is a warning: the run goes on (an interrupt still stops it)."""
        try:
            with self.stage(name):
                yield
        except Exception as exc:  # noqa: BLE001 - any failure of a diagnostic is reported, never fatal
            self._failed = None
            message = first_line(exc)
            log.warning("%s failed (the run goes on): %s", name, message)
            self.record.warn(name, message)

    def progress(self, stage: str) -> Callable[[int, int], None]:
        """A progress callback for `stage`."""
        return lambda done, total: self.reporter.progress(stage, done, total)

    def fail(self, exc: BaseException) -> BaseException:
        """Record how the run ended on `exc`; return the exception to raise. Once a signal arrived, any failure
        is the interrupt's doing (a KeyboardInterrupt raised inside a library can surface as another error)."""
        record = self.record
        record.failed_stage = record.failed_stage or self._failed or self._started
        if isinstance(exc, (KeyboardInterrupt, Interrupted)) or self.signals.noted:
            record.status, record.error = "interrupted", INTERRUPTED
            return Interrupted(INTERRUPTED)
        record.status = "failed"
        record.error = str(exc) if isinstance(exc, StquantError) else f"{exc.__class__.__name__}: {first_line(exc)}"
        return exc

    def attempt(self, work: Callable[[], object]) -> BaseException | None:
        """Run `work()`; return what stopped it (recorded), or None."""
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised by `perform`
            return self.fail(exc)
        return None

    def perform(self, *works: Callable[[], object]) -> None:
        """Run `works` in order (after a failure the next still run, after an interrupt none), then write and
        announce the record; re-raise what stopped the run (a KeyboardInterrupt becomes `Interrupted`)."""
        handlers = attach_logging(self.run_dir, self.reporter)
        error: BaseException | None = None
        try:
            with native_stderr_to(self.run_dir / "stquant.log"), self.signals.installed():
                try:
                    for work in works:
                        if not isinstance(error, Interrupted):
                            error = self.attempt(work) or error
                except KeyboardInterrupt as exc:  # the signal landed between two works
                    error = self.fail(exc)
                self.signals.raising = False  # a signal from here on is only noted: the run is over
                try:
                    self.save()
                except OutputError as exc:  # disk full: what stopped the run, if anything, says more
                    error = error or self.fail(exc)
                self.announce()
        finally:
            detach_logging(handlers)
        if error is not None:
            raise error


class _Signals:
    """SIGINT/SIGTERM during a run: the first raises KeyboardInterrupt (the stages stop), later ones are only
    noted, so that writing the record is never cut short. Stages also check `noted` when they start, in case
    the KeyboardInterrupt was swallowed (raised inside a `__del__`)."""

    def __init__(self) -> None:
        self.raising = True
        self.noted = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.noted = True
        if self.raising:
            self.raising = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.signal(number, self) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


class _RunLog(logging.FileHandler):
    """stquant.log: a line that cannot be written (disk full) is dropped, without logging's traceback on stderr
    (the run's own writes report the full disk)."""

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the record."""


def attach_logging(run_dir: Path, reporter: Reporter) -> list[logging.Handler]:
    """Send engine logs to the run log and the reporter only (TensorFlow's root handler would repeat them)."""
    engine_log = logging.getLogger("engine")
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False
    try:
        file_handler = _RunLog(run_dir / "stquant.log", encoding="utf-8")
    except OSError as exc:
        raise output_error(exc, run_dir / "stquant.log") or exc from None
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [file_handler, ReporterLogHandler(reporter)]
    for handler in handlers:
        engine_log.addHandler(handler)
    return handlers


def detach_logging(handlers: list[logging.Handler]) -> None:
    engine_log = logging.getLogger("engine")
    for handler in handlers:
        engine_log.removeHandler(handler)
        handler.close()
    engine_log.propagate = True
