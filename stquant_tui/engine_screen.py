"""What the Compare and Recover screens share: one engine command as a child process, read by a worker thread.

A subclass names its widgets `#<PREFIX>-stage` and `#<PREFIX>-detail`, starts its process and calls `read()`,
and says what a failure to read the events posts (`read_failed`). Esc stops a running command (asks first: the
engine gets SIGINT, exits 130 and keeps what it measured) or closes the screen; leaving the screen kills the
command and removes its temporary config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

from textual import on
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from stquant_tui.messages import RunLog
from stquant_tui.widgets.dialogs import ConfirmScreen
from stquant_tui.workers import failure_line, when_attached

ResultT = TypeVar("ResultT")


class EngineJobScreen(Screen[ResultT]):
    """A screen that runs `process` (a compare or recover client) on the temporary `config_file`."""

    PREFIX: ClassVar[str]  # the widget-id prefix and the reading worker's group
    STOP_QUESTION: ClassVar[str]  # asked before stopping a running command

    running: reactive[bool] = reactive(False, bindings=True)

    def __init__(self) -> None:
        super().__init__()
        self.process: Any = None  # the client of the engine command (CompareProcess, RecoverProcess)
        self.config_file: Path | None = None

    def read_failed(self, reason: str) -> Message:
        """The finished message to post when the thread reading the events raised."""
        raise NotImplementedError

    def read(self) -> None:
        """Read the started process's events in a worker thread (each posted to this screen)."""
        self.running = True
        process = self.process
        self.run_worker(
            lambda: process.read(self.post_message),
            thread=True,
            group=self.PREFIX,
            exit_on_error=False,
            description=f"engine {self.PREFIX}",
        )

    @when_attached
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The thread reading the events raised: stop the engine and say why."""
        if event.state is not WorkerState.ERROR or event.worker.group != self.PREFIX or not self.running:
            return
        if self.process is not None:  # SIGINT, then SIGKILL after a grace period: not on the UI thread
            self.run_worker(self.process.kill, thread=True, group="stop-engine", exit_on_error=False)
        reason = failure_line(event.worker, self.app.engine_cmd)  # type: ignore[attr-defined]
        self.post_message(self.read_failed(reason))

    @on(RunLog)
    @when_attached
    def logged(self, event: RunLog) -> None:
        if event.level in ("WARNING", "ERROR"):
            self.query_one(f"#{self.PREFIX}-detail", Static).update(f"{event.level.lower()}: {event.message}")

    def remove_config(self) -> None:
        if self.config_file is not None:
            self.config_file.unlink(missing_ok=True)
            self.config_file = None

    def action_stop(self) -> None:
        if self.running:
            self.app.push_screen(ConfirmScreen(self.STOP_QUESTION), self._stop)

    def _stop(self, yes: bool | None) -> None:
        if yes and self.process is not None and self.running:
            self.query_one(f"#{self.PREFIX}-stage", Static).update("Stopping… (SIGINT sent to the engine)")
            self.process.cancel()

    def action_close(self) -> None:
        if not self.running:
            self.dismiss(None)

    def on_unmount(self) -> None:
        if self.process is not None:
            self.process.kill()
        self.remove_config()
