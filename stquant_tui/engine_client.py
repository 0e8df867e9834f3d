"""Talk to the batch engine as a child process (`python -m engine ...`): inspect, validate, run.

The UI process never imports the engine's TensorFlow/ONNX parts: the engine writes to the terminal
directly and can only be cancelled cleanly from outside. Nothing here touches Textual widgets; the
run reader calls a `post` callback (the app's thread-safe `post_message`).
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
from pathlib import Path

from pydantic import ValidationError

from engine.errors import first_line
from engine.run_summary import RunSummary
from stquant_tui.messages import RunFinished, RunLog, RunProgress, RunStage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


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


def inspect_model(engine_cmd: Sequence[str], model: str, timeout: float = 120,
                  trust_model: bool = False) -> tuple[dict | None, str | None]:
    """Run `inspect MODEL --json [--trust-model]`; return (info, None) or (None, one-line error)."""
    try:
        done = subprocess.run([*engine_cmd, "inspect", model, "--json", *_trust(trust_model)], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=_child_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"inspect failed: {exc}"
    if done.returncode != 0:
        return None, _last_line(done.stderr) or f"inspect exited with {done.returncode}"
    try:
        return json.loads(done.stdout.strip().splitlines()[0]), None
    except (ValueError, IndexError):
        return None, "inspect printed no JSON"


def validate_file(engine_cmd: Sequence[str], config: Path, timeout: float = 60,
                  trust_model: bool = False) -> tuple[int, list[str]]:
    """Run `validate CONFIG [--trust-model]`; return (exit code, error lines)."""
    done = subprocess.run([*engine_cmd, "validate", str(config), *_trust(trust_model)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=_child_env())
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


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


class RunProcess:
    """One `run CONFIG --progress jsonl` child; `read()` blocks until it exits (call it in a thread)."""

    def __init__(self, engine_cmd: Sequence[str], config: Path, overrides: Sequence[str] = (),
                 output_dir: Path | None = None, cwd: Path | None = None, trust_model: bool = False) -> None:
        self.argv = [*engine_cmd, "run", str(config), *overrides, "--progress", "jsonl", *_trust(trust_model)]
        if output_dir is not None:
            self.argv += ["--output-dir", str(output_dir)]
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.cancelled = False
        self._stderr: deque[str] = deque(maxlen=200)

    def start(self) -> None:
        # A new session: the terminal's Ctrl-C/SIGHUP reach only us, and the child never reads the tty.
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL, text=True, bufsize=1, cwd=self.cwd,
                                        env=_child_env(), start_new_session=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cancel(self) -> None:
        """Ask the engine to stop cleanly (SIGINT: no partial model, exit 130)."""
        self.cancelled = True
        if self.running:
            self.process.send_signal(signal.SIGINT)

    def kill(self, grace: float = 3.0) -> None:
        """Stop the child for good (used when the app quits mid-run)."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def read(self, post: Callable[[object], object]) -> None:
        """Turn stdout JSON lines into messages via `post`; post RunFinished when the child exits."""
        assert self.process is not None and self.process.stdout is not None
        errors = threading.Thread(target=self._drain_stderr, args=(post,), daemon=True)
        errors.start()
        summary = error = run_dir = None
        exit_code = None
        for raw in self.process.stdout:
            line = raw.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                run_dir = line  # the run folder path printed after the events
                continue
            kind = event.get("event")
            if kind == "stage":
                post(RunStage(str(event.get("name", ""))))
            elif kind == "progress":
                post(RunProgress(str(event.get("stage", "")), int(event.get("done", 0)), int(event.get("total", 0))))
            elif kind == "log":
                post(RunLog(str(event.get("level", "INFO")), str(event.get("message", ""))))
            elif kind == "result":
                try:
                    summary = RunSummary.model_validate(event.get("summary"))
                except ValidationError as exc:
                    error = f"unreadable run summary: {first_line(exc)}"
            elif kind == "error":
                error = str(event.get("message", ""))
                exit_code = event.get("exit_code")
        code = self.process.wait()
        errors.join(timeout=2)
        if error is None and code not in (0, None) and summary is None:
            error = self._stderr[-1] if self._stderr else f"engine exited with {code}"
        if run_dir is None and summary:
            run_dir = summary.run_dir
        post(RunFinished(code if exit_code is None else int(exit_code), summary, error, run_dir, self.cancelled))

    def _drain_stderr(self, post: Callable[[object], object]) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())
                post(RunLog("STDERR", line.rstrip()))

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)
