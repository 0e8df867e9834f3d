"""Talk to the batch engine as a child process (`python -m engine ...`): inspect, validate, run.

The UI process never imports the engine's TensorFlow/ONNX parts: the engine writes to the terminal
directly and can only be cancelled cleanly from outside. Nothing here touches Textual widgets; the
run reader parses each stdout line once into an `engine.run.protocol` event (docs/protocol.md) and calls
a `post` callback (the app's thread-safe `post_message`).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from textual.message import Message

from engine.common.errors import shorten
from engine.data.dataset import IMAGE_EXTENSIONS
from engine.run.protocol import (
    ComparisonEvent,
    ErrorEvent,
    Event,
    LogEvent,
    ProgressEvent,
    ResultEvent,
    StageEvent,
    parse_event,
)
from stquant_tui.messages import RunFinished, RunLog, RunProgress, RunStage

IMAGE_SUFFIXES = IMAGE_EXTENSIONS  # the engine's list: the wizard counts as images what the engine reads


def default_engine_cmd() -> list[str]:
    """The engine command: `$STQUANT_TUI_ENGINE` (shell words) or `python -m engine`."""
    override = os.environ.get("STQUANT_TUI_ENGINE")
    return shlex.split(override) if override else [sys.executable, "-m", "engine"]


def _child_env() -> dict[str, str]:
    """The UI's environment, plus the folder holding `engine` on PYTHONPATH (works from any cwd)."""
    import engine  # the package only (its __init__ is empty); never its TF-dependent modules

    env = dict(os.environ)
    root = str(Path(engine.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _trust(trust_model: bool) -> list[str]:
    return ["--trust-model"] if trust_model else []


def inspect_model(
    engine_cmd: Sequence[str], model: str, timeout: float = 120, trust_model: bool = False
) -> tuple[dict | None, str | None]:
    """Run `inspect MODEL --json [--trust-model]`; return (info, None) or (None, one-line error)."""
    try:
        done = _run_child([*engine_cmd, "inspect", model, "--json", *_trust(trust_model)], timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"inspect failed: {exc}"
    if done.returncode != 0:
        return None, _last_line(done.stderr) or f"inspect exited with {done.returncode}"
    try:
        return json.loads(done.stdout.strip().splitlines()[0]), None
    except (ValueError, IndexError):
        return None, "inspect printed no JSON"


def validate_file(
    engine_cmd: Sequence[str], config: Path, timeout: float = 60, trust_model: bool = False
) -> tuple[int, list[str]]:
    """Run `validate CONFIG [--trust-model]`; return (exit code, error lines).

    Raises OSError if the command cannot start, subprocess.TimeoutExpired after `timeout` seconds."""
    done = _run_child([*engine_cmd, "validate", str(config), *_trust(trust_model)], timeout)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


_CHILDREN: set[subprocess.Popen[str]] = set()  # inspect/validate children running now (`stop_children`)
_CHILDREN_LOCK = threading.Lock()


def _run_child(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, timeout=timeout)` (text, undecodable bytes replaced), with the
    child known to `stop_children` while it runs."""
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_child_env(),
    ) as child:
        with _CHILDREN_LOCK:
            _CHILDREN.add(child)
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(child)
    return subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)


def stop_children() -> None:
    """Kill the inspect/validate children still running (the app quits: the threads waiting on them end now)."""
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for child in children:
        child.kill()


def scan_class_folders(folder: Path, limit: int = 200_000) -> tuple[list[str], int, int]:
    """(class folder names, image files, other files) directly under each class folder, with os.scandir."""
    classes, images, others = [], 0, 0
    with os.scandir(folder) as entries:
        subdirs = sorted(e for e in (entry.name for entry in entries if entry.is_dir()) if not e.startswith("."))
    for name in subdirs:
        classes.append(name)
        with os.scandir(folder / name) as entries:
            for entry in entries:
                if entry.is_file():
                    if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                        images += 1
                    else:
                        others += 1
                if images + others > limit:
                    return classes, images, others
    return classes, images, others


@dataclass
class EngineOutput:
    """What the child said besides its progress, kept for its final message."""

    final: ResultEvent | ComparisonEvent | None = None
    error: str | None = None
    """The `error` event's message."""
    exit_code: int | None = None
    """The `error` event's exit code."""
    text: str | None = None
    """The last plain (non-JSON) line: the run or comparison folder."""
    unreadable: str | None = None
    """The first line that looked like an event but was none."""


def parse_line(line: str) -> Event | str:
    """The event of one stdout line, or the line itself when it is plain output (not a JSON object);
    raises pydantic.ValidationError for a JSON object that is no event of `engine.run.protocol`."""
    return parse_event(line) if line.startswith("{") else line


def unreadable(line: str, exc: ValidationError) -> str:
    """One line naming what is wrong with a malformed event line."""
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"unreadable engine event ({where + ': ' if where else ''}{problem['msg']}): {shorten(line, 80)}"


class RunProcess:
    """One `run CONFIG --progress jsonl` child; `read()` blocks until it exits (call it in a thread)."""

    def __init__(
        self,
        engine_cmd: Sequence[str],
        config: Path,
        overrides: Sequence[str] = (),
        output_dir: Path | None = None,
        cwd: Path | None = None,
        trust_model: bool = False,
    ) -> None:
        self.argv = [*engine_cmd, "run", str(config), *overrides, "--progress", "jsonl", *_trust(trust_model)]
        if output_dir is not None:
            self.argv += ["--output-dir", str(output_dir)]
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.cancelled = False
        self._stderr: deque[str] = deque(maxlen=200)

    def start(self) -> None:
        # A new session: the terminal's Ctrl-C/SIGHUP reach only us, and the child never reads the tty.
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            cwd=self.cwd,
            env=_child_env(),
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cancel(self) -> None:
        """Ask the engine to stop cleanly (SIGINT: no partial model, exit 130)."""
        self.cancelled = True
        if self.running and self.process is not None:
            self.process.send_signal(signal.SIGINT)

    def kill(self, grace: float = 3.0) -> None:
        """Stop the child for good (used when the app quits mid-run)."""
        if not self.running or self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def read(self, post: Callable[[Message], object]) -> None:
        """Parse each stdout line once (`parse_line`), turning events into messages via `post` (`on_event`);
        post the final message (`finished`) when the child exits."""
        assert self.process is not None and self.process.stdout is not None
        errors = threading.Thread(target=self._drain_stderr, args=(post,), daemon=True)
        errors.start()
        output = EngineOutput()
        for raw in self.process.stdout:
            line = raw.strip()
            if not line:
                continue
            try:
                parsed = parse_line(line)
            except ValidationError as exc:
                output.unreadable = output.unreadable or unreadable(line, exc)
                post(RunLog("WARNING", unreadable(line, exc)))
                continue
            if isinstance(parsed, str):
                output.text = parsed
            else:
                self.on_event(parsed, output, post)
        code = self.process.wait()
        errors.join(timeout=2)
        post(self.finished(code, output))

    def on_event(self, event: Event, output: EngineOutput, post: Callable[[Message], object]) -> None:
        """Post the message of a progress event; keep the final and error events in `output`."""
        if isinstance(event, StageEvent):
            post(RunStage(event.name))
        elif isinstance(event, ProgressEvent):
            post(RunProgress(event.stage, event.done, event.total))
        elif isinstance(event, LogEvent):
            post(RunLog(event.level, event.message))
        elif isinstance(event, ErrorEvent):
            output.error, output.exit_code = event.message, event.exit_code
        elif isinstance(event, (ResultEvent, ComparisonEvent)):
            output.final = event

    def finished(self, code: int, output: EngineOutput) -> Message:
        """RunFinished: the summary, the error (event, unreadable result, else the last stderr line), the run folder."""
        summary = output.final.summary if isinstance(output.final, ResultEvent) else None
        error = output.error or (output.unreadable if summary is None else None)
        if error is None and code not in (0, None) and summary is None:
            error = self._stderr[-1] if self._stderr else f"engine exited with {code}"
        run_dir = output.text or (summary.run_dir if summary else None)  # the run folder printed after the events
        return RunFinished(
            code if output.exit_code is None else output.exit_code, summary, error, run_dir, self.cancelled
        )

    def _drain_stderr(self, post: Callable[[Message], object]) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())
                post(RunLog("STDERR", line.rstrip()))

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)
