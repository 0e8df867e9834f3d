"""Benchmark: the ONNX route of a Keras `.h5`, converting in a child process vs in the run's own process.

`stquant run` quantizes the tutorial `.h5` with the ONNX quantizer (QDQ per-channel MinMax, the 300 flower photos,
`--no-cache`). Since this change, a process without TensorFlow loads and converts the model in a spawned child
(`engine.quantize.keras_onnx.convert_apart`), so TensorFlow's memory is gone when ONNX Runtime calibrates. The
baseline is the same command with TensorFlow imported first, which makes the engine convert in its own process, as
it always did before. Alternated runs; prints the median wall time and peak memory (every process of a run summed)
and their ratios; writes them into docs/benchmarks.md (section `onnx_h5_conversion`).

    python benchmarks/onnx_h5_conversion.py [--repeat N]
"""

import statistics
import tempfile
from pathlib import Path

import yaml

from measure import measure, repeat_count, stquant_command

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
MODEL = ASSETS / "models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5"
PHOTOS = ASSETS / "datasets/flower_photos"


def config(folder: Path) -> Path:
    """The sample ONNX config on the tutorial .h5, calibrating on all 300 photos."""
    text = yaml.safe_load((ROOT / "sample_configs/quantization_onnx_config.yaml").read_text())
    text["general"]["model_path"] = str(MODEL)
    text["dataset"] = {
        "class_names": sorted(p.name for p in PHOTOS.iterdir() if p.is_dir()),
        "quantization_path": str(PHOTOS),
    }
    text["quantization"].update(quantization_input_type="float", granularity="per_channel")
    path = folder / "onnx_h5.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


def main() -> None:
    repeat = repeat_count(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = config(folder)
        runs: dict[str, list[tuple[float, float]]] = {"in-process": [], "child": []}
        for i in range(repeat):
            for case in runs:
                args = [
                    "run",
                    str(path),
                    "--progress",
                    "none",
                    "--output-dir",
                    str(folder / f"{case}_{i}"),
                    "--no-cache",
                ]
                command = stquant_command(*args)
                if case == "in-process":  # TensorFlow already loaded: the engine converts in its own process
                    command[2] = "import tensorflow; " + command[2]
                runs[case].append(measure(command, cwd=ROOT))
    median = {
        case: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for case, rs in runs.items()
    }
    (child_t, child_m), (base_t, base_m) = median["child"], median["in-process"]
    print(f"tutorial .h5, ONNX quantizer, 300 photos, QDQ per-channel MinMax; median of {repeat} alternated runs\n")
    print("| conversion | wall s | peak MiB (all processes) |")
    print("|---|---|---|")
    print(f"| in the run's process (before) | {base_t:.1f} | {base_m:.0f} |")
    print(f"| in a child process (now) | {child_t:.1f} | {child_m:.0f} |")
    print(f"| ratio now / before | **{child_t / base_t:.2f}** | **{child_m / base_m:.2f}** |")


if __name__ == "__main__":
    from docs_tables import section

    with section("onnx_h5_conversion"):
        main()
