"""Send what native libraries print on file descriptor 2 (TensorFlow's C++ logs) to the run log.

TensorFlow, absl and the TFLite converter write straight to fd 2, bypassing Python; without this they
would interleave with our progress output (and corrupt a terminal UI). Reporters keep a private copy
of the original stderr, so user-facing messages still reach the terminal.
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def terminal_stderr() -> TextIO:
    """A text stream on a duplicate of the process's stderr, unaffected by `native_stderr_to`.

    When sys.stderr is not a file (captured in tests, embedded), it is returned as it is.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    return open(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")


@contextlib.contextmanager
def native_stderr_to(log_path: Path) -> Iterator[None]:
    """Within the block, fd 2 (and so sys.stderr) appends to `log_path`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
