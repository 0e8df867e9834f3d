"""The Run part of the app: start the engine child, follow it, cancel it, show the summary.

A mixin of `StquantApp` (kept apart so app.py stays short); it uses the app's draft, steps and
`engine_cmd`, and owns `process`, `run_config` and `last_run`. The run's config is a temp file
(`verdict.write_temp_config`), removed when the run ends, when the app quits and on SIGHUP.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.widgets import Button
from textual.worker import Worker

from engine.config.schema import RUNNABLE_MODES
from stquant_tui.engine_client import RunProcess, stop_children
from stquant_tui.messages import RunFinished
from stquant_tui.verdict import write_temp_config
from stquant_tui.widgets.dialogs import ConfirmScreen
from stquant_tui.workers import failure_line

if TYPE_CHECKING:  # for mypy, the mixin is the app it is mixed into (`StquantApp`), as declared below
    from textual.app import App

    from stquant_tui.draft import Draft
    from stquant_tui.verdict import Verdict

    _AppBase = App[int]
else:
    _AppBase = object

INTERRUPTED = 130


class RunActions(_AppBase):
    """Run, cancel, quit and finish handling for the app."""

    if TYPE_CHECKING:  # what it uses of StquantApp
        step: str
        running: bool
        draft: Draft
        engine_cmd: list[str]
        verdict: Verdict | None
        _checked: str
        run_when_checked: bool
        process: RunProcess | None
        run_config: Path | None
        last_run: RunFinished | None

        @property
        def trust_model(self) -> bool: ...
        def refresh_review(self) -> int: ...
        def check_pending(self) -> bool: ...
        def check_key(self) -> str: ...
        def step_widget(self, name: str) -> Any: ...
        async def mount_step(self, name: str) -> Any: ...
        def leave(self) -> None: ...

    async def action_run(self) -> None:
        if self.running:
            return
        if self.refresh_review() or (
            self.verdict is not None and not self.verdict.ok and self._checked == self.check_key()
        ):
            self.step = "review"
            self.notify("stquant validate refuses this config: fix the problems listed first.", severity="error")
            return
        if self.check_pending():  # run once validate answers (`_run_if_asked`); Review says it is checking meanwhile
            self.run_when_checked = True
            return
        mode = self.draft.get("operation_mode", "quantization")
        if mode not in RUNNABLE_MODES:
            self.notify(f"operation_mode {mode} cannot be run by stquant", severity="error")
            return
        run_step = await self.mount_step("run")
        self.run_config = write_temp_config(self.draft, ".stquant-tui-run-")
        self.process = RunProcess(self.engine_cmd, self.run_config, trust_model=self.trust_model)
        run_step.reset(f"Starting {mode}…")
        try:
            self.process.start()
        except OSError as exc:
            self._remove_run_config()
            self.notify(f"Cannot start the engine: {exc}", severity="error")
            return
        self.running = True
        self.step = "run"
        self.query_one("#back", Button).disabled = True
        process = self.process
        self.run_worker(
            lambda: process.read(run_step.post_message),
            thread=True,
            group="run",
            exit_on_error=False,
            description="engine run",
        )

    def run_reader_failed(self, worker: Worker[None]) -> None:
        """The thread reading the run's events raised: stop the engine, say why on the Run step, re-enable Back."""
        if not self.running:
            return
        if self.process is not None:  # SIGINT, then SIGKILL after a grace period: not on the UI thread
            self.run_worker(
                self.process.kill, thread=True, group="stop-engine", exit_on_error=False, description="stop the engine"
            )
        reason = f"the wizard could not read the run's events ({failure_line(worker, self.engine_cmd)}); engine stopped"
        self.step_widget("run").post_message(RunFinished(1, error=reason))

    def _remove_run_config(self) -> None:
        if self.run_config is not None:
            self.run_config.unlink(missing_ok=True)
            self.run_config = None

    async def on_run_finished(self, event: RunFinished) -> None:
        """Show the summary of a run that got one; a failure is said once (on the Run step), a cancel is no failure."""
        summary = event.summary
        shown = summary is not None and summary.status != "interrupted"  # ok, or failed: what was done, and where
        summary_step = await self.mount_step("summary") if shown else None
        self.running = False
        self.last_run = event
        self.query_one("#back", Button).disabled = False
        self._remove_run_config()
        if summary_step is not None:
            summary_step.show(summary, event.error)
            self.step = "summary"

    def action_cancel_run(self) -> None:
        if not self.running:
            return
        self.push_screen(ConfirmScreen("Stop the run? No quantized model will be written."), self._cancel)

    def _cancel(self, yes: bool | None) -> None:
        if yes and self.process is not None and self.running:
            self.step_widget("run").log_line("Cancelling… (SIGINT sent to the engine)")
            self.process.cancel()

    async def action_quit(self) -> None:
        """Quit; during a run, ask first (the run would be stopped), and with unsaved edits (`leave`)."""
        if not self.running:
            self.leave()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_engine()
                self.leave()

        self.push_screen(ConfirmScreen("A run is in progress. Stop it and quit?"), answered)

    def stop_engine(self) -> None:
        """Stop the engine cleanly (SIGINT, then SIGKILL after a grace period) and remove the run's config."""
        if self.process is not None:
            self.process.kill()
        self._remove_run_config()

    def hang_up(self) -> None:
        """SIGHUP (dropped SSH connection, closed terminal): stop the engine, leave no temp file, exit."""
        self.stop_engine()
        self.exit(return_code=INTERRUPTED)

    def on_unmount(self) -> None:
        self.stop_engine()
        stop_children()  # a validate or inspect still running: its thread ends now, so quitting never waits on it
