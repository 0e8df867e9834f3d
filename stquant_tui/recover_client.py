"""`stquant recover` as a child process for the Recover screen: its arguments, its JSON lines, its messages.

Reuses `engine_client.RunProcess` (new session, SIGINT to cancel, stderr drained) and reads the recover
protocol: `stage`/`progress`/`log` become the Run step's messages, each `recovery_step` event a `RecoverStep`
(an `engine.run.recovery.Step`), and the exit a `RecoverFinished` carrying the `recovery` event's
`engine.run.recovery.Recovery`. Imports no ML runtime (`engine.run.recovery` is pydantic only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from engine.run.protocol import Event, RecoveryEvent, RecoveryStepEvent, ResultEvent
from engine.run.recovery import Budget, Recovery, Step, Target
from engine.run.summary import RunSummary
from stquant_tui.engine_client import EngineOutput, RunProcess

TARGET_OPTIONS = {"agreement": "--target-agreement", "max_drop": "--max-drop"}


@dataclass
class RecoverStep(Message):
    """One step of the search was quantized and measured."""

    step: Step


@dataclass
class RecoverFinished(Message):
    """The recover child exited."""

    exit_code: int
    recovery: Recovery | None = None
    """The `recovery` event's record (None if the engine stopped before the run folder existed)."""
    summary: RunSummary | None = None
    """The `result` event's summary (of the best model)."""
    error: str | None = None
    """The `error` event's message (exit 1: the best reached and what stopped the search), or the last stderr line."""


def recover_arguments(target: Target, budget: Budget) -> list[str]:
    """The command line's target and budget options."""
    args = [TARGET_OPTIONS[target.kind], f"{target.value:g}"]
    if budget.board:
        args += ["--board", budget.board]
    for option, value in (
        ("--max-ram", budget.max_ram_kib),
        ("--max-flash", budget.max_flash_kib),
        ("--max-ms", budget.max_ms),
    ):
        if value is not None:
            args += [option, f"{value:g}"]
    return args


class RecoverProcess(RunProcess):
    """One `recover CONFIG TARGET [BUDGET] --progress jsonl` child; `read()` blocks until it exits."""

    def __init__(
        self,
        engine_cmd: Sequence[str],
        config: Path,
        target: Target,
        budget: Budget,
        *,
        output_dir: Path | None = None,
        trust_model: bool = False,
    ) -> None:
        super().__init__(engine_cmd, config, trust_model=trust_model)
        self.argv = [*engine_cmd, "recover", str(config), *recover_arguments(target, budget), "--progress", "jsonl"]
        if trust_model:
            self.argv.append("--trust-model")
        if output_dir is not None:
            self.argv += ["--output-dir", str(output_dir)]
        self.recovery: Recovery | None = None

    def on_event(self, event: Event, output: EngineOutput, post: Callable[[Message], object]) -> None:
        """A `recovery_step` event becomes a RecoverStep; the `recovery` record is kept; the others as for a run."""
        if isinstance(event, RecoveryStepEvent):
            post(RecoverStep(event.step))
        elif isinstance(event, RecoveryEvent):
            self.recovery = event.recovery
        else:
            super().on_event(event, output, post)

    def finished(self, code: int, output: EngineOutput) -> Message:
        """RecoverFinished: the record, the summary, the error (event, unreadable record, else the last stderr line)."""
        summary = output.final.summary if isinstance(output.final, ResultEvent) else None
        error = output.error or (output.unreadable if self.recovery is None else None)
        if error is None and code != 0:
            error = self.stderr_tail[-1] if self.stderr_tail else f"engine exited with {code}"
        return RecoverFinished(code if output.exit_code is None else output.exit_code, self.recovery, summary, error)
