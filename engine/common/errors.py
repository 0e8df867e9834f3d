"""Exit codes and the exceptions that map to them (one-line messages, no traceback)."""

import errno
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes of every `stquant` command."""

    OK = 0
    FAILURE = 1
    INVALID = 2
    MISSING_INPUT = 3
    INTERRUPTED = 130


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The first line of an exception's message or of a text (else the type name), cut to `limit` characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]


def shorten(text: str, limit: int = 120) -> str:
    """`text`, or its start and an ellipsis when longer than `limit` (an echoed key or value stays readable)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StquantError(Exception):
    """An expected failure: its message is one line that names the key or the path."""

    exit_code = ExitCode.FAILURE


class ConfigError(StquantError):
    """Invalid configuration or usage; carries every problem found, one per line."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: str | Iterable[object]) -> None:
        self.problems = [str(p) for p in problems] if not isinstance(problems, str) else [problems]
        super().__init__("\n".join(self.problems))


class InputError(StquantError):
    """A missing or unreadable input file or folder."""

    exit_code = ExitCode.MISSING_INPUT


class OutputError(StquantError):
    """An output that cannot be written: disk full, quota, file too large, read-only or permission denied."""

    exit_code = ExitCode.MISSING_INPUT  # 3: the documented code for an unwritable output


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def output_error(exc: OSError, path: object) -> OutputError | None:
    """An OutputError naming `path` for an OSError of WRITE_ERRNOS while writing it, else None."""
    if exc.errno not in WRITE_ERRNOS:
        return None
    return OutputError(f"cannot write {path}: {exc.strerror or exc.__class__.__name__}")


class EngineError(StquantError):
    """The engine could not finish (conversion or quantization failed)."""

    exit_code = ExitCode.FAILURE


class Interrupted(StquantError):
    """The run was interrupted (Ctrl-C or SIGTERM)."""

    exit_code = ExitCode.INTERRUPTED
