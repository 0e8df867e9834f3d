"""End to end in a real terminal: tmux (private socket) at 80x24, keys only, then the engine reads the file."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, ROOT

from engine.config.schema import load_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]


class Tmux:
    def __init__(self, socket: str) -> None:
        self.base = ["tmux", "-L", socket]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=20).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "e2e")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        return self._wait(lambda screen: text in screen, repr(text), timeout)

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> str:
        """Wait until a screen line matches the regular expression `pattern`."""
        return self._wait(
            lambda screen: any(re.search(pattern, line) for line in screen.splitlines()),
            f"a line matching {pattern!r}",
            timeout,
        )

    def _wait(self, found, what: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if found(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{what} not on screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "e2e", *keys)

    def type(self, text: str) -> None:
        self("send-keys", "-t", "e2e", "-l", text)


def test_keyboard_only_session_saves_a_config_the_engine_accepts(tmp_path):
    out = tmp_path / "e2e.yaml"
    installed = shutil.which("stquant-tui", path=os.path.dirname(sys.executable))
    command = [installed] if installed else [sys.executable, "-m", "stquant_tui"]
    shell = (
        f"cd {shlex.quote(str(tmp_path))} && PYTHONPATH={shlex.quote(str(ROOT))} "
        f"{shlex.join(command)} --out {shlex.quote(str(out))}; echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(f"stquant-e2e-{os.getpid()}")
    tmux(
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "80",
        "-y",
        "24",
        "-e",
        "TEXTUAL_ANIMATIONS=none",
        "-e",
        f"STQUANT_TUI_ENGINE={shlex.join(FAKE_ENGINE)}",
        "-e",
        f"FAKE_ENGINE_RUN_DIR={tmp_path / 'run'}",
        shell,
    )
    try:
        tmux.wait_for("The demo config (d)")  # no config given: new, or the demo?
        time.sleep(1.0)  # let the terminal's answers to the start-up queries arrive first
        tmux.keys("d")
        tmux.wait_for("300 images")  # the demo config, from beside the package (cwd has none)
        for _ in range(4):  # dataset name -> quantization folder -> training -> split -> seed
            tmux.keys("Tab")
            time.sleep(0.2)
        tmux.type("abc")
        tmux.wait_for("not a number")
        tmux.keys("C-n")
        time.sleep(0.3)
        assert "Dataset" in tmux.screen() and "not a number" in tmux.screen()  # Next refused
        tmux.keys("C-u")
        tmux.wait_for("(default: 123)")  # the field is empty (a loaded machine is slow to show it)
        tmux.type("7")
        tmux.wait_for_line(r"Seed\s+7\s*$")
        tmux.keys("C-n")
        tmux.wait_for("Input range")
        tmux.keys("C-n")
        tmux.wait_for("Output width 10")
        tmux.keys("C-p")
        tmux.wait_for("Input range")  # Back works
        tmux.keys("C-n")
        tmux.wait_for("Output width 10")
        tmux.keys("C-n")
        tmux.wait_for("Operation mode")
        tmux.keys("C-n")
        tmux.wait_for("validate: ok")
        tmux.keys("C-o")
        tmux.wait_for("Saved")
        tmux.keys("C-q")
        tmux.wait_for("EXIT=0")
    finally:
        tmux("kill-server")
    config = load_config(out)
    assert config.dataset.seed == 7
    assert config.resolve_path(config.dataset.quantization_path).samefile(DEMO_CONFIG.parent / "demo/digits")


def test_sighup_mid_run_stops_the_engine_and_leaves_no_temp_file(tmp_path):
    """A dropped SSH connection: SIGHUP to the wizard mid-run. The engine stops (it saw SIGINT: exit 130,
    no model), no `.stquant-tui-*` file is left, and nothing like a BrokenPipeError is printed."""
    config = tmp_path / "config.yaml"
    config.write_text(DEMO_CONFIG.read_text().replace("demo/", f"{DEMO_CONFIG.parent / 'demo'}/"))
    temp = tmp_path / "tmp"
    temp.mkdir()
    shell = (
        f"cd {shlex.quote(str(tmp_path))} && PYTHONPATH={shlex.quote(str(ROOT))} TMPDIR={temp} "
        f"{shlex.quote(sys.executable)} -m stquant_tui {config}; echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(f"stquant-hup-{os.getpid()}")
    tmux(
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "120",
        "-y",
        "40",
        "-e",
        "TEXTUAL_ANIMATIONS=none",
        "-e",
        f"STQUANT_TUI_ENGINE={shlex.join(FAKE_ENGINE)}",
        "-e",
        "FAKE_ENGINE_SLOW=1",
        "-e",
        f"FAKE_ENGINE_RUN_DIR={tmp_path / 'run'}",
        shell,
    )
    try:
        tmux.wait_for("300 images")
        found = subprocess.run(
            ["pgrep", "-f", f"^{sys.executable} -m stquant_tui {config}"], capture_output=True, text=True
        )
        pid = int(found.stdout.split()[0])
        time.sleep(1.0)  # let the terminal's answers to the start-up queries arrive first
        for step in ("Input range", "Output width 10", "Operation mode", "validate: ok"):  # each step shown first
            tmux.keys("C-n")
            tmux.wait_for(step)
        tmux.keys("C-r")
        tmux.wait_for("calibration")
        assert list(temp.glob(".stquant-tui-run-*.yaml"))  # the run's config exists while it runs
        engines = subprocess.run(["pgrep", "-f", "fake_engine.py run"], capture_output=True, text=True).stdout.split()
        assert engines
        os.kill(pid, signal.SIGHUP)
        screen = tmux.wait_for("EXIT=", timeout=20)
    finally:
        tmux("kill-server")
    assert "EXIT=130" in screen  # the wizard ended as interrupted
    time.sleep(0.5)
    assert not any(Path(f"/proc/{p}").exists() for p in engines)  # the engine is gone
    assert not list(temp.iterdir()) and not list(tmp_path.glob(".stquant-tui-*"))  # no temp file left
    assert not list((tmp_path / "run").rglob("*.tflite"))  # no partial model
    assert "Error" not in screen and "Traceback" not in screen, screen  # Textual draws (and would print) on stderr
