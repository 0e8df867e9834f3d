"""How the wizard's background workers end: one line for a worker that failed, and a guard for the handlers of
their messages, which may still be queued when the app quits and its widgets are being removed."""

from __future__ import annotations

import functools
import shlex
import subprocess
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from textual.dom import DOMNode
from textual.message import Message
from textual.worker import Worker, WorkerState

from engine.common.errors import first_line

N = TypeVar("N", bound=DOMNode)
M = TypeVar("M", bound=Message)

ENDED_BADLY = (WorkerState.ERROR, WorkerState.CANCELLED)
RETRY_CHECK = "retry-check"  # the option id of Review's "run stquant validate again"


def when_attached(handler: Callable[[N, M], None]) -> Callable[[N, M], None]:
    """Run a message handler only while its widget is in the app's DOM (not once the app is quitting)."""

    @functools.wraps(handler)
    def guarded(self: N, message: M) -> None:
        if self.is_attached:
            handler(self, message)

    return guarded


def failure_line(worker: Worker[Any], engine_cmd: Sequence[str]) -> str:
    """`<engine command>: <why>` for a worker that raised or was cancelled (the command as a shell would show it)."""
    error = worker.error
    if worker.state is WorkerState.CANCELLED or error is None:
        reason = "stopped before it answered"
    elif isinstance(error, subprocess.TimeoutExpired):
        reason = f"no answer within {error.timeout:g} s"
    elif isinstance(error, OSError) and engine_cmd and error.filename == engine_cmd[0]:
        reason = "command not found" if isinstance(error, FileNotFoundError) else error.strerror or first_line(error)
    elif isinstance(error, OSError) and error.strerror:
        reason = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        reason = f"{type(error).__name__}: {first_line(error)}"
    return f"{shlex.join(engine_cmd)}: {reason}"
