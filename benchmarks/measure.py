"""Run a command as a child and report its wall time and peak RSS (shared by the benchmark scripts)."""

import argparse
import subprocess
import sys
from pathlib import Path


def measure(command: list[str], **kwargs) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `command`, measured in a fresh wrapper process so children don't mix."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, code)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, **kwargs)
    wall, peak, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(command)}\n{out.stderr[-2000:]}")
    return float(wall), float(peak)


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
    launcher = "import sys; sys.modules['mlflow'] = None; from engine.cli import entry; sys.argv[0] = 'stquant'; entry()"
    return [sys.executable, "-c", launcher, *args]


def ratio_table(rows: list[tuple[str, float, float, float, float]]) -> str:
    """Rows of (case, ours s, reference s, ours MiB, reference MiB) as a table with ratios."""
    lines = [f"{'case':28}{'ours s':>9}{'ref s':>9}{'ratio':>8}{'ours MiB':>10}{'ref MiB':>10}{'ratio':>8}"]
    for case, ours_t, ref_t, ours_m, ref_m in rows:
        lines.append(f"{case:28}{ours_t:9.1f}{ref_t:9.1f}{ours_t / ref_t:8.2f}{ours_m:10.0f}{ref_m:10.0f}{ours_m / ref_m:8.2f}")
    return "\n".join(lines)


