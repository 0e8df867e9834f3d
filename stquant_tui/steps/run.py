"""Run step: stage, progress bar with count and ETA, scrolling log, fed by the engine's JSON lines."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, RichLog, Static

from stquant_tui.messages import RunFinished, RunLog, RunProgress, RunStage
from stquant_tui.workers import when_attached


class RunStep(Vertical):
    """Shows a run in progress; the app owns the child process."""

    step = "run"

    def __init__(self, clock=None) -> None:
        super().__init__(id="step-run", classes="step")
        self.clock = clock
        self.stage = ""
        self.lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("Not started.", id="run-stage")
        yield ProgressBar(id="run-progress", show_eta=True, clock=self.clock)
        # wrapped at its own width beside its scrollbar (min_width 1: RichLog's default 78 cuts lines at 80 columns)
        yield RichLog(id="run-log", max_lines=5000, wrap=True, markup=False, highlight=False, min_width=1)

    def reset(self, title: str) -> None:
        self.stage = ""
        self.query_one("#run-stage", Static).update(title)
        self.query_one("#run-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#run-log", RichLog).clear()
        self.lines.clear()

    def log_line(self, text: str, style: str = "") -> None:
        """Append a line to the log (wrapped; also kept as plain text in `lines`).

        The view follows new lines while it shows the end; scrolled back, it stays where the user is."""
        self.lines.append(text)
        log = self.query_one("#run-log", RichLog)
        log.auto_scroll = log.is_vertical_scroll_end or log.max_scroll_y == 0
        log.write(Text(text, style=style))

    @on(RunStage)
    @when_attached
    def stage_started(self, event: RunStage) -> None:
        self.stage = event.name
        self.query_one("#run-stage", Static).update(f"Stage: {event.name}")
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.log_line(f"── {event.name}", "bold")

    @on(RunProgress)
    @when_attached
    def progressed(self, event: RunProgress) -> None:
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(total=event.total or None, progress=event.done)
        self.query_one("#run-stage", Static).update(f"Stage: {event.stage}  {event.done}/{event.total}")

    @on(RunLog)
    @when_attached
    def logged(self, event: RunLog) -> None:
        if event.level == "STDERR" and event.message.startswith("stquant: "):
            return  # the engine's own error line: the `error` event says it (once, when the run ends)
        prefix = "" if event.level in ("INFO", "STDERR") else f"{event.level}: "
        style = "dim" if event.level == "STDERR" else "bold" if event.level in ("WARNING", "ERROR") else ""
        self.log_line(prefix + event.message, style)

    @on(RunFinished)
    @when_attached
    def finished(self, event: RunFinished) -> None:
        """One line says how it ended: done, cancelled (by the user), or failed with the engine's reason."""
        stage = self.query_one("#run-stage", Static)
        if event.exit_code == 0:
            stage.update("Finished: ok")
        elif event.cancelled and event.exit_code == 130:
            stage.update("Cancelled: no quantized model was written")
        else:
            stage.update(f"Failed (exit {event.exit_code}): see the last line of the log")
            self.log_line(f"✗ {event.error or 'the engine stopped'}", "bold")
        if event.run_dir:
            self.log_line(f"Run folder: {event.run_dir}")
