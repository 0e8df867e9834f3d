"""Benchmark: the ONNX route of `stquant run` on the shared `.onnx` model vs a plain `quantize_static` script.

Both quantize ST's flowers MobileNet v2 (NCHW `.onnx`) to QDQ per-channel MinMax on the 300 flower photos, as
child processes, alternated, each case repeated; the baseline is `plain_quantize_static.py`. Ours is the whole
`stquant run` (quantization, per-layer error report, footprint) without MLflow logging, with the statistics
cache off (`--no-cache`) and then from the cache (a second run of the same config). Prints the median wall time
and peak memory (every process of a run summed) and their ratios (ours / plain script); writes them into
docs/benchmarks.md (section `onnx_vs_quantize_static`).

    python benchmarks/onnx_vs_quantize_static.py [--repeat N]
"""

import os
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from measure import measure, repeat_count, stquant_command

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
MODEL = ASSETS / "models/flowers_onnx/mobilenet_v2_0.35_128_tfs_channel_first.onnx"
PHOTOS = ASSETS / "datasets/flower_photos"
PLAIN = Path(__file__).with_name("plain_quantize_static.py")


def config(folder: Path, model: Path = MODEL) -> Path:
    """The ONNX route of the sample config on `model` (the shared .onnx model), calibrating on all 300 photos."""
    text = yaml.safe_load((ROOT / "sample_configs/quantization_onnx_config.yaml").read_text())
    text["general"]["model_path"] = str(model)
    text["dataset"] = {
        "class_names": sorted(p.name for p in PHOTOS.iterdir() if p.is_dir()),
        "quantization_path": str(PHOTOS),
    }
    text["quantization"].update(quantization_input_type="float", granularity="per_channel")
    text["mlflow"] = {"uri": str(folder / "mlruns")}
    path = folder / "onnx_route.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


def main() -> None:
    repeat = repeat_count(MODEL)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = config(folder)
        env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "uncached": [], "cached": []}
        for i in range(repeat):
            plain = [sys.executable, str(PLAIN), str(MODEL), str(PHOTOS), "128", str(folder / "plain.onnx")]
            runs["plain"].append(measure(plain))
            for case, extra in (("uncached", ["--no-cache"]), ("cached", [])):
                out = folder / f"{case}_{i}"
                command = stquant_command("run", str(path), "--progress", "none", "--output-dir", str(out), *extra)
                runs[case].append(measure(command, cwd=ROOT, env=env))
    median = lambda case, k: statistics.median(r[k] for r in runs[case])  # noqa: E731 - a one-line local helper
    rows = [
        (f"stquant run, statistics {name}", median(case, 0), median("plain", 0), median(case, 1), median("plain", 1))
        for name, case in (("measured (--no-cache)", "uncached"), ("from the cache", "cached"))
    ]
    print(
        f"300 photos, QDQ per-channel MinMax; median of {repeat} alternated runs per case "
        f"(load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores)\n"
    )
    print("| case | stquant s | plain script s | wall ratio | stquant MiB | plain script MiB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for case, ours_t, plain_t, ours_m, plain_m in rows:
        print(
            f"| {case} | {ours_t:.1f} | {plain_t:.1f} | **{ours_t / plain_t:.2f}** | {ours_m:.0f} | {plain_m:.0f} "
            f"| **{ours_m / plain_m:.2f}** |"
        )


if __name__ == "__main__":
    from docs_tables import section

    with section("onnx_vs_quantize_static"):
        main()
