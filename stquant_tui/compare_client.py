"""`stquant compare` as a child process for the Compare screen: its arguments, its JSON lines, its messages.

Reuses `engine_client.RunProcess` (new session, SIGINT to cancel, stderr drained) and reads the compare
protocol: `stage`/`progress`/`log` become the Run step's messages, each `variant` event a
`CompareVariant` (an `engine.comparison.Variant`), and the exit a `CompareFinished` carrying the final
`engine.comparison.Comparison`. Imports no ML runtime (`engine.comparison` is pydantic only).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from textual.message import Message

from engine.comparison import Comparison, Variant
from engine.errors import first_line
from stquant_tui.engine_client import RunProcess
from stquant_tui.messages import RunLog, RunProgress, RunStage


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

    def __init__(self, engine_cmd: Sequence[str], config: Path, vary: Sequence[str], *, target: float | None = None,
                 board: str | None = None, output_dir: Path | None = None, trust_model: bool = False) -> None:
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

    def read(self, post: Callable[[object], object]) -> None:
        """Turn stdout JSON lines into messages via `post`; post CompareFinished when the child exits."""
        assert self.process is not None and self.process.stdout is not None
        errors = threading.Thread(target=self._drain_stderr, args=(post,), daemon=True)
        errors.start()
        comparison = error = exit_code = None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the comparison folder printed last (also in the comparison itself)
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            try:
                if kind == "stage":
                    post(RunStage(str(event.get("name", ""))))
                elif kind == "progress":
                    post(RunProgress(str(event.get("stage", "")), int(event.get("done", 0)),
                                     int(event.get("total", 0))))
                elif kind == "log":
                    post(RunLog(str(event.get("level", "INFO")), str(event.get("message", ""))))
                elif kind == "variant":
                    post(CompareVariant(Variant.model_validate(event.get("variant"))))
                elif kind == "comparison":
                    comparison = Comparison.model_validate(event.get("comparison"))
                elif kind == "error":
                    error, exit_code = str(event.get("message", "")), event.get("exit_code")
            except ValidationError as exc:
                error = f"unreadable {kind} event: {first_line(exc)}"
        code = self.process.wait()
        errors.join(timeout=2)
        if error is None and code != 0:
            error = self.stderr_tail[-1] if self.stderr_tail else f"engine exited with {code}"
        post(CompareFinished(code if exit_code is None else int(exit_code), comparison, error))
