"""`stquant compare` as a child process for the Compare screen: its arguments, its JSON lines, its messages.

Reuses `engine_client.RunProcess` (new session, SIGINT to cancel, stderr drained) and reads the compare
protocol: `stage`/`progress`/`log` become the Run step's messages, each `variant` event a
`CompareVariant` (an `engine.run.comparison.Variant`), and the exit a `CompareFinished` carrying the final
`engine.run.comparison.Comparison`. Imports no ML runtime (`engine.run.comparison` is pydantic only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from engine.run.comparison import Comparison, Variant
from engine.run.protocol import ComparisonEvent, Event, VariantEvent
from stquant_tui.engine_client import EngineOutput, RunProcess


@dataclass
class CompareVariant(Message):
    """One variant was quantized and measured (or failed)."""

    variant: Variant


@dataclass
class CompareFinished(Message):
    """The compare child exited."""

    exit_code: int
    comparison: Comparison | None = None
    """The `comparison` event (None if the engine stopped before the comparison folder existed)."""
    error: str | None = None
    """The `error` event's message, or the last stderr line."""


def vary_arguments(choices: dict[str, list[Any]]) -> list[str]:
    """`--vary KEY=V1,V2` for every key with at least one value (booleans as the YAML writes them)."""
    args: list[str] = []
    for key, values in choices.items():
        if values:
            args += ["--vary", f"{key}={','.join(_text(v) for v in values)}"]
    return args


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class CompareProcess(RunProcess):
    """One `compare CONFIG --vary ... --progress jsonl` child; `read()` blocks until it exits."""

    def __init__(
        self,
        engine_cmd: Sequence[str],
        config: Path,
        vary: Sequence[str],
        *,
        target: float | None = None,
        board: str | None = None,
        output_dir: Path | None = None,
        trust_model: bool = False,
    ) -> None:
        super().__init__(engine_cmd, config, trust_model=trust_model)
        self.argv = [*engine_cmd, "compare", str(config), *vary, "--progress", "jsonl"]
        if trust_model:
            self.argv.append("--trust-model")
        if target is not None:
            self.argv += ["--target-agreement", f"{target:g}"]
        if board:
            self.argv += ["--board", board]
        if output_dir is not None:
            self.argv += ["--output-dir", str(output_dir)]

    def on_event(self, event: Event, output: EngineOutput, post: Callable[[Message], object]) -> None:
        """A `variant` event becomes a CompareVariant; the others as for a run."""
        if isinstance(event, VariantEvent):
            post(CompareVariant(event.variant))
        else:
            super().on_event(event, output, post)

    def finished(self, code: int, output: EngineOutput) -> Message:
        """CompareFinished: the comparison, the error (event, unreadable comparison, else the last stderr line)."""
        comparison = output.final.comparison if isinstance(output.final, ComparisonEvent) else None
        error = output.error or (output.unreadable if comparison is None else None)
        if error is None and code != 0:
            error = self.stderr_tail[-1] if self.stderr_tail else f"engine exited with {code}"
        return CompareFinished(code if output.exit_code is None else output.exit_code, comparison, error)
