"""Benchmark: the ONNX route of a Keras `.h5`, converting in a child process vs in the run's own process.

`stquant run` quantizes the tutorial `.h5` with the ONNX quantizer (QDQ per-channel MinMax, the 300 flower photos,
`--no-cache`). A process without TensorFlow loads and converts the model in a spawned child
(`engine.quantize.keras_onnx.convert_apart`), so TensorFlow's memory is gone when ONNX Runtime calibrates. The
baseline is the same command with TensorFlow imported first, which makes the engine convert in its own process, as
it always did before. Alternated runs; prints the median wall time and peak memory (every process of a run summed,
sampled every 20 ms), overall and split at the first calibration progress event (before it: loading and
converting; after it: calibration, the per-layer report, footprint); writes them into docs/benchmarks.md (section
`onnx_h5_conversion`).

    python benchmarks/onnx_h5_conversion.py [--repeat N]
"""

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from measure import repeat_count, stquant_command, tree_rss
from onnx_vs_quantize_static import ROOT, config

MODEL = ROOT.parent / "shared/assets/models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5"


def staged_measure(command: list[str], events: Path) -> tuple[float, float, float]:
    """(wall s, peak MiB before the first calibration progress event, peak MiB after it) of `command`."""
    peaks = [0.0, 0.0]
    start = time.perf_counter()
    with events.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT)
        while process.poll() is None:
            calibrating = any(json.loads(line).get("stage") == "calibration" for line in _progress(events))
            peaks[calibrating] = max(peaks[calibrating], tree_rss(process.pid) / 2**20)
            time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"benchmark command failed ({process.returncode}): {' '.join(command)}")
    return time.perf_counter() - start, peaks[0], peaks[1]


def _progress(events: Path) -> list[str]:
    return [line for line in events.read_text().splitlines() if line.startswith('{"event": "progress"')]


def main() -> None:
    repeat = repeat_count(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = config(folder, MODEL)
        runs: dict[str, list[tuple[float, float, float]]] = {"in-process": [], "child": []}
        for i in range(repeat):
            for case in runs:
                out = folder / f"{case}_{i}"
                args = ["run", str(path), "--progress", "jsonl", "--output-dir", str(out), "--no-cache"]
                command = stquant_command(*args)
                if case == "in-process":  # TensorFlow already loaded: the engine converts in its own process
                    command[2] = "import tensorflow; " + command[2]
                runs[case].append(staged_measure(command, folder / f"{case}_{i}.jsonl"))
    median = {case: [statistics.median(r[k] for r in rs) for k in range(3)] for case, rs in runs.items()}
    print(f"tutorial .h5, ONNX quantizer, 300 photos, QDQ per-channel MinMax; median of {repeat} alternated runs\n")
    print("| conversion | wall s | peak MiB | peak MiB, load and convert | peak MiB, calibration and after |")
    print("|---|---|---|---|---|")
    for name, case in (("in the run's process (before)", "in-process"), ("in a child process (now)", "child")):
        wall, before, after = median[case]
        print(f"| {name} | {wall:.1f} | {max(before, after):.0f} | {before:.0f} | {after:.0f} |")
    ratios = [now / then for now, then in zip(median["child"], median["in-process"], strict=True)]
    peak = max(median["child"][1:]) / max(median["in-process"][1:])
    print(f"| ratio now / before | **{ratios[0]:.2f}** | **{peak:.2f}** | {ratios[1]:.2f} | {ratios[2]:.2f} |")


if __name__ == "__main__":
    from docs_tables import section

    with section("onnx_h5_conversion"):
        main()
