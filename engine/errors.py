"""Exit codes and the exceptions that map to them (one-line messages, no traceback)."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes of every `stquant` command."""

    OK = 0
    FAILURE = 1
    INVALID = 2
    MISSING_INPUT = 3
    INTERRUPTED = 130


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (or its type name), cut to `limit` characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]


class StquantError(Exception):
    """An expected failure: its message is one line that names the key or the path."""

    exit_code = ExitCode.FAILURE


class ConfigError(StquantError):
    """Invalid configuration or usage; carries every problem found, one per line."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems):
        self.problems = [str(p) for p in problems] if not isinstance(problems, str) else [problems]
        super().__init__("\n".join(self.problems))


class InputError(StquantError):
    """A missing or unreadable input file or folder."""

    exit_code = ExitCode.MISSING_INPUT


class EngineError(StquantError):
    """The engine could not finish (conversion or quantization failed)."""

    exit_code = ExitCode.FAILURE


class Interrupted(StquantError):
    """The run was interrupted (Ctrl-C or SIGTERM)."""

    exit_code = ExitCode.INTERRUPTED
