"""Interrupting an in-process `stquant ... --progress jsonl` with a real signal when its output shows a given line.

The signal is sent to this very process from another thread as the line is written, so it lands while the engine
goes on, as the signal of a parent reading a child's output would; the engine's own handlers receive it.
"""

import contextlib
import io
import json
import os
import signal
import threading
from collections.abc import Callable

from engine.cli import main


class SignalOnLine(io.StringIO):
    """stdout that sends `number` to this process (once) when a written line satisfies `matches`."""

    def __init__(self, matches: Callable[[str], bool], number: signal.Signals) -> None:
        super().__init__()
        self.matches, self.number = matches, number
        self.sender: threading.Thread | None = None

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.sender is None and any(self.matches(line) for line in text.splitlines()):
            self.sender = threading.Thread(target=os.kill, args=(os.getpid(), self.number))
            self.sender.start()
        return written


def stage_is(name: str) -> Callable[[str], bool]:
    """A jsonl line that says the stage `name` started."""
    return lambda line: line.startswith("{") and json.loads(line) == {"event": "stage", "name": name}


def interrupt_in_process(
    argv: list[object], matches: Callable[[str], bool], number: signal.Signals
) -> tuple[int, str, str]:
    """Run `main(argv)` here, send `number` when a line of its stdout `matches`: (exit code, stdout, stderr)."""
    out, err = SignalOnLine(matches, number), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    assert out.sender is not None, "the line never came: nothing was interrupted"
    out.sender.join()
    return code, out.getvalue(), err.getvalue()
