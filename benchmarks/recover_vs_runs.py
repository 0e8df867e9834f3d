"""`stquant recover` against doing its search by hand: one full `stquant run` per step it took.

The tutorial model (MobileNet v2 0.35 128) quantized per tensor without `optimize` loses about half its
top-1 agreement with the float model; `stquant recover --target-agreement PCT` searches for the fix. The baseline
runs `stquant run` (chain_eqe: quantize, evaluate float and int8) once for each step of `recovery.json`, with that
step's `calibration_method`, `bias_correction` and `float_layers`, the statistics cache warm as recover's was: both
start from the statistics of the configured run and no kept quantized model (each may reuse what it converted itself).
Both in this process's job, alternated, wall times of child processes (`measure.measure`). Prints the steps, the
evaluations the search used, and the ratio; writes the table into docs/benchmarks.md (section `recover_vs_runs`).

    python benchmarks/recover_vs_runs.py [--target 98] [--quantizer TFlite_converter]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import yaml

from measure import measure, stquant_command

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
MODEL = ASSETS / "models" / "flowers_mobilenet_v2_0.35_128_fft" / "mobilenet_v2_0.35_128_fft.h5"
PHOTOS = ASSETS / "datasets" / "flower_photos"
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def config(folder: Path, quantizer: str) -> Path:
    """The tutorial's chain_eqe config, per tensor, calibrated on 40 % of the photos and evaluated on all."""
    data = {
        "general": {"model_path": str(MODEL)},
        "operation_mode": "chain_eqe",
        "dataset": {
            "class_names": CLASSES,
            "quantization_path": str(PHOTOS),
            "quantization_split": 0.4,
            "test_path": str(PHOTOS),
        },
        "preprocessing": {
            "rescaling": {"scale": "1/127.5", "offset": -1},
            "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
            "color_mode": "rgb",
        },
        "quantization": {
            "quantizer": quantizer,
            "quantization_input_type": "uint8",
            "quantization_output_type": "float",
            "granularity": "per_tensor",
        },
        "mlflow": {"uri": str(folder / "mlruns")},
        "hydra": {"run": {"dir": str(folder / "runs")}},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def overrides(settings: dict) -> list[str]:
    layers = ",".join(settings["float_layers"])
    return [
        f"quantization.calibration_method={settings['calibration_method']}",
        f"quantization.bias_correction={settings['bias_correction']}",
        f"quantization.float_layers=[{layers}]",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=98.0, help="--target-agreement of the search, percent")
    parser.add_argument("--quantizer", default="TFlite_converter", choices=("TFlite_converter", "Onnx_quantizer"))
    args = parser.parse_args()
    from engine.quantize.cache import QUANTIZED_FROM, StatsCache

    if not MODEL.exists():
        raise SystemExit(f"the tutorial model is not at {MODEL} (see ../shared/assets/README.md)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = config(folder, args.quantizer)
        env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache"), "PYTHONPATH": str(ROOT)}
        measure(
            stquant_command("run", str(path), "--progress", "none"), env=env, cwd=ROOT
        )  # warms the statistics cache
        kept = StatsCache(folder / "cache" / "stquant" / "statistics")
        kept.remove(QUANTIZED_FROM)
        recover = stquant_command("recover", str(path), "--target-agreement", str(args.target), "--progress", "none")
        searched, _ = measure([*recover, "--output-dir", str(folder / "recover")], env=env, cwd=ROOT)
        recovery = json.loads((folder / "recover" / "recovery.json").read_text())
        kept.remove(QUANTIZED_FROM)  # the runs by hand start as recover did
        by_hand = 0.0
        rows = []
        for step in recovery["steps"]:
            out = folder / f"run_{step['index']}"
            command = stquant_command("run", str(path), *overrides(step["settings"]), "--progress", "none")
            wall, _ = measure([*command, "--output-dir", str(out)], env=env, cwd=ROOT)
            summary = json.loads((out / "run_summary.json").read_text())
            same = summary["accuracy"]["agreement"] == step["agreement"]
            by_hand += wall
            rows.append((step, wall, same))
    print(f"{args.quantizer}, per tensor, target agreement {args.target:g} %: {recovery['outcome']}\n")
    print("| step | remedy | agreement % | RAM KiB | flash KiB | `stquant run` of it: s | same agreement |")
    print("|---|---|---|---|---|---|---|")
    for step, wall, same in rows:
        print(
            f"| {step['index']} | {step['remedy']} | {step['agreement']:.2f} | {step['activation_ram_kib']:.2f} "
            f"| {step['weights_flash_kib']:.2f} | {wall:.1f} | {'yes' if same else 'NO'} |"
        )
    print(
        f"\n`stquant recover`: {searched:.1f} s, {recovery['evaluations']} evaluations "
        f"({len(recovery['steps'])} steps on {recovery['evaluation_images']} images, the rest ranking candidates "
        f"on {recovery['ranking_images']}); one `stquant run` per step: {by_hand:.1f} s "
        f"(ratio {searched / by_hand:.2f}x); one run per evaluation the search made, at the mean run's time: "
        f"{by_hand / len(rows) * recovery['evaluations']:.1f} s (ratio "
        f"{searched / (by_hand / len(rows) * recovery['evaluations']):.2f}x)"
    )


if __name__ == "__main__":
    from docs_tables import section

    with section("recover_vs_runs"):
        main()
