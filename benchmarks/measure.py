"""Run a command as a child and report its wall time and peak RSS (shared by the benchmark scripts)."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def measure(command: list[str], **kwargs) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `command`. The peak is the largest sum of the RSS of the command and
    all its descendants (decoding workers included), sampled together every 20 ms; never below the
    largest single process's own peak (`ru_maxrss` from wait4), which catches spikes between samples."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, **kwargs)
        sampled = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            sampled = max(sampled, tree_rss(process.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(
                f"benchmark command failed ({process.returncode}): {' '.join(command)}\n"
                f"{stderr.read().decode(errors='replace')[-2000:]}"
            )
    return wall, max(sampled, usage.ru_maxrss * 1024) / 2**20


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and every process descending from it, now (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree.update(children)
        frontier = children
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def repeat_count(required: Path) -> int:
    """Parse `--repeat N` (default 2); exit with a clear reason when the shared assets are absent."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not required.exists():
        sys.exit(f"skipped: model-zoo assets not found at {required}")
    return args.repeat


def stquant_command(*args: str) -> list[str]:
    """`stquant ARGS` as a child command, without MLflow logging (the reference scripts do not log)."""
    launcher = (
        "import sys; sys.modules['mlflow'] = None; from engine.cli import entry; sys.argv[0] = 'stquant'; entry()"
    )
    return [sys.executable, "-c", launcher, *args]


def ratio_table(rows: list[tuple[str, float, float, float, float]], against: str = "reference") -> str:
    """Rows of (case, ours s, theirs s, ours MiB, theirs MiB) as a Markdown table with ratios (ours / theirs)."""
    lines = [
        f"| case | stquant s | {against} s | wall ratio | stquant MiB | {against} MiB | memory ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, ours_t, ref_t, ours_m, ref_m in rows:
        lines.append(
            f"| {case} | {ours_t:.1f} | {ref_t:.1f} | **{ours_t / ref_t:.2f}** | {ours_m:.0f} | {ref_m:.0f} | "
            f"**{ours_m / ref_m:.2f}** |"
        )
    return "\n".join(lines)
