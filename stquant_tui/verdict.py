"""What `stquant validate` says about the draft: run the real command on a temporary copy, read its lines.

The engine decides (schema, operation mode, model file, colour mode, class folders); the wizard only
shows it. The copy is written to the temp folder with relative paths rebased, so nothing is ever
written beside the user's files, and it is removed when validate ends.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.schema import Problem
from stquant_tui.draft import Draft
from stquant_tui.engine_client import validate_file

VALIDATE_TIMEOUT = 60.0  # seconds `stquant validate` may take before the wizard says it did not answer
_KEY = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)*): ")


@dataclass(frozen=True)
class Verdict:
    """`stquant validate`'s exit code, its problems (key + message, where = file:line) and warnings."""

    exit_code: int
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def write_temp_config(draft: Draft, prefix: str) -> Path:
    """The draft's text in a new temp file (relative paths rebased so they name the same files)."""
    twin = draft.copy()
    folder = Path(tempfile.gettempdir())
    twin.rebase(folder)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".yaml", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(twin.yaml_text())
    return Path(name)


def check_draft(
    engine_cmd: Sequence[str],
    draft: Draft,
    trust_model: bool = False,
    timeout: float = VALIDATE_TIMEOUT,
    shown: str | None = None,
) -> Verdict:
    """Run `stquant validate` on the draft's text; its file is named `shown` (the file Save writes; default
    the draft's own).

    Raises OSError if the engine command cannot start, subprocess.TimeoutExpired after `timeout` seconds."""
    temp = write_temp_config(draft, ".stquant-tui-check-")
    try:
        code, lines = validate_file(engine_cmd, temp, timeout=timeout, trust_model=trust_model)
    finally:
        temp.unlink(missing_ok=True)
    shown = shown or str(draft.path or "<new config>")
    return parse_lines(code, [line.replace(str(temp), shown) for line in lines], shown)


def parse_lines(code: int, lines: list[str], name: str) -> Verdict:
    """Problems and warnings from validate's stderr lines (`stquant: [where: ]key: message`)."""
    problems, warnings = [], []
    for line in lines:
        text = line.removeprefix("stquant: ")
        if text.startswith("warning: "):
            warnings.append(text.removeprefix("warning: "))
            continue
        where = ""
        match = re.match(rf"^({re.escape(name)}(?::\d+)?|command line: override '[^']*'): ", text)
        if match:
            where, text = match.group(1), text[match.end() :]
        key = _KEY.match(text)
        problems.append(Problem(key.group(1), text[key.end() :], where) if key else Problem("", text, where))
    if code != 0 and not problems:
        problems.append(Problem("", f"stquant validate exited with {code}"))
    return Verdict(code, problems, warnings)
