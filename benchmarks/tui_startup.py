"""Benchmark: time from launching `stquant-tui` (bundled demo config) to its first screen, in tmux at 80x24.

Baseline in the same job: a bare Textual app (one Static and the Footer) launched the same way, so the
ratio shows what stquant adds to Textual's own start-up. The time is taken from `tmux new-session` until
`tmux capture-pane` shows the marker text (polled every 10 ms). Alternated runs, medians. The wizard is
this checkout's (`python -m stquant_tui` with the repository on PYTHONPATH), on a private tmux socket.
usage: python benchmarks/tui_startup.py [--repeat N]   (needs tmux)
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Static
class Bare(App):
    def compose(self):
        yield Static("bare textual app ready")
        yield Footer()
Bare().run()
"""


ROOT = Path(__file__).resolve().parents[1]
TMUX = ["tmux", "-L", f"stq_bench_{time.monotonic_ns()}"]


def first_screen_seconds(command: str, marker: str, cwd: Path) -> float:
    session = f"stq_bench_{time.monotonic_ns()}"
    start = time.perf_counter()
    subprocess.run(
        [
            *TMUX,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            "-c",
            str(cwd),
            "-e",
            f"PYTHONPATH={ROOT}",
            command,
        ],
        check=True,
    )
    try:
        while time.perf_counter() - start < 30:
            screen = subprocess.run([*TMUX, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
            if marker in screen:
                return time.perf_counter() - start
            time.sleep(0.01)
        raise SystemExit(f"{marker!r} not shown within 30 s; last screen:\n{screen}")
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("skipped: tmux is not installed")
    tui = f"{sys.executable} -m stquant_tui"
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE_APP)
        ours, base = [], []
        for _ in range(args.repeat):
            base.append(first_screen_seconds(f"{sys.executable} {bare}", "bare textual app ready", Path(tmp)))
            ours.append(first_screen_seconds(tui, "Quantization folder", Path(tmp)))
    print(f"stquant-tui first screen: {' '.join(f'{t:.2f}' for t in ours)} s")
    print(f"bare Textual app:         {' '.join(f'{t:.2f}' for t in base)} s")
    o, b = statistics.median(ours), statistics.median(base)
    subprocess.run([*TMUX, "kill-server"], capture_output=True)
    print(f"median of {args.repeat} alternated runs: stquant-tui {o:.2f} s, bare Textual {b:.2f} s, ratio {o / b:.2f}")


if __name__ == "__main__":
    from docs_tables import section

    with section("tui_startup", preformatted=True):
        main()
