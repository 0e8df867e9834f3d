"""Pytest plugin: a test run leaves no new file in the checkout (tests write only under `tmp_path`).

The untracked, not ignored files of the git checkout are listed when the session starts and when it ends (in the
process that runs the session, not in xdist's workers); a file that appeared meanwhile fails the run, named.
Outside a git checkout (an sdist, a copied tree) nothing is checked.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BEFORE = pytest.StashKey[frozenset[str]]()


def _untracked() -> frozenset[str] | None:
    if not (ROOT / ".git").exists():
        return None
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=False,
    )
    return frozenset(listed.stdout.decode().split("\0")) - {""} if listed.returncode == 0 else None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        before = _untracked()
        if before is not None:
            session.config.stash[_BEFORE] = before


def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_BEFORE, None)
    after = _untracked() if before is not None else None
    new = sorted(after - before) if after is not None and before is not None else []
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\ntests wrote into the checkout (write under tmp_path): {', '.join(new)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
