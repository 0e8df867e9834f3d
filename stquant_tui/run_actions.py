"""The Run part of the app: start the engine child, follow it, cancel it, show the summary.

A mixin of `StquantApp` (kept apart so app.py stays short); it uses the app's draft, steps and
`engine_cmd`, and owns `process`, `run_config` and `last_run`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from textual.widgets import Button

from engine.config import RUNNABLE_MODES
from stquant_tui.draft import Draft
from stquant_tui.engine_client import RunProcess
from stquant_tui.messages import RunFinished
from stquant_tui.widgets.dialogs import ConfirmScreen


class RunActions:
    """Run, cancel and finish handling for the app."""

    def action_run(self) -> None:
        review = self.step_widget("review")
        if self.running:
            return
        if review.refresh_review(self.draft):
            self.step = "review"
            self.notify("Fix the problems listed before running.", severity="error")
            return
        mode = self.draft.get("operation_mode", "quantization")
        if mode not in RUNNABLE_MODES:
            self.notify(f"operation_mode {mode} cannot be run by stquant", severity="error")
            return
        self.run_config = self._write_run_config()
        self.process = RunProcess(self.engine_cmd, self.run_config, trust_model=self.step_widget("model").trust_model)
        run_step = self.step_widget("run")
        run_step.reset(f"Starting {mode}…")
        try:
            self.process.start()
        except OSError as exc:
            self.run_config.unlink(missing_ok=True)
            self.notify(f"Cannot start the engine: {exc}", severity="error")
            return
        self.running = True
        self.step = "run"
        self.query_one("#back", Button).disabled = True
        process = self.process
        self.run_worker(lambda: process.read(run_step.post_message), thread=True, group="run",
                        exit_on_error=False, description="engine run")

    def _write_run_config(self) -> Path:
        """The draft as a file the child can read: beside the original config if possible, else in the
        temp folder with relative paths rebased (either way they point at the same files)."""
        folder = self.draft.base_dir if os.access(self.draft.base_dir, os.W_OK) else Path(tempfile.gettempdir())
        copy = Draft(self.draft.data, self.draft.path)
        copy.rebase(folder)
        fd, name = tempfile.mkstemp(prefix=".stquant-tui-run-", suffix=".yaml", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(copy.yaml_text())
        return Path(name)

    def on_run_finished(self, event: RunFinished) -> None:
        self.running = False
        self.last_run = event
        self.query_one("#back", Button).disabled = False
        if self.run_config is not None:
            self.run_config.unlink(missing_ok=True)
        summary = event.summary
        if summary is not None and summary.status != "interrupted":  # ok, or failed: what was done, and where
            self.step_widget("summary").show(summary, event.error)
            self.step = "summary"
        if event.exit_code != 0 and (summary is None or summary.status == "failed"):
            self.notify(event.error or f"engine exited with {event.exit_code}", title="Run failed",
                        severity="error", timeout=10)

    def action_cancel_run(self) -> None:
        if not self.running:
            return
        self.push_screen(ConfirmScreen("Stop the run? No quantized model will be written."), self._cancel)

    def _cancel(self, yes: bool | None) -> None:
        if yes and self.process is not None:
            self.step_widget("run").log_line("Cancelling… (SIGINT sent to the engine)")
            self.process.cancel()

    def on_unmount(self) -> None:
        if self.process is not None:
            self.process.kill()
        if self.run_config is not None:
            self.run_config.unlink(missing_ok=True)

