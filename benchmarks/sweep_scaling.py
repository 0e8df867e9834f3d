"""`stquant sweep` wall time on the shared models: a local pool of 1 and 2 workers, and a local Ray cluster of 2.

Four configs (the tutorial MobileNet v2 .h5 through the TFLite converter and its ONNX sibling through the ONNX
quantizer, both evaluated on the 300 flower photos; ResNet-8 on the 500 CIFAR-10 images; the VWW MobileNet v1
calibrated on random images, not evaluated) x 2 variants (per-channel, per-tensor) = 8 cells, estimated on the
STM32H747I-DISCO. Each sweep starts with an empty statistics cache of its own (so each computes what the first
did; within a sweep, a variant may reuse the statistics another cell stored). Wall times of the whole command
(`measure.measure`), Ray's start included; prints the ratios to `--jobs 1`, whether every sweep gives each cell
the figures of a separate `stquant run` of that cell's config and overrides, and the cells' table; writes them
into docs/benchmarks.md (section `sweep_scaling`).

    python benchmarks/sweep_scaling.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml

from measure import measure, stquant_command

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
MODELS = ASSETS / "models"
FLOWERS = ASSETS / "datasets" / "flower_photos"
CIFAR10 = ASSETS / "datasets" / "cifar10"
BOARD = "STM32H747I-DISCO"
VARY = ["--vary", "quantization.granularity=per_channel,per_tensor"]
FIGURES = ("float_accuracy", "int8_accuracy", "agreement", "weights_flash_kib", "activation_ram_kib")
RUNS = (("local", 1), ("local", 2), ("ray", 2))


def _config(model: Path, mode: str, classes: list[str], scale: str, offset: float, quantizer: str, photos: Path | None):
    dataset: dict = {"class_names": classes}
    if photos is not None:
        dataset.update(quantization_path=str(photos), quantization_split=0.4, test_path=str(photos))
    return {
        "general": {"model_path": str(model)},
        "operation_mode": mode,
        "dataset": dataset,
        "preprocessing": {
            "rescaling": {"scale": scale, "offset": offset},
            "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
            "color_mode": "rgb",
        },
        "quantization": {
            "quantizer": quantizer,
            "quantization_input_type": "uint8" if quantizer == "TFlite_converter" else "float",
            "quantization_output_type": "float",
        },
    }


def write_configs(folder: Path) -> Path:
    """The four configs in `folder/configs`, MLflow and run folders inside `folder`."""
    flowers = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    cifar = (MODELS / "cifar10_resnet8" / "labels_cifar10.txt").read_text().split()
    configs = {
        "flowers_mobilenet_v2_h5": _config(
            MODELS / "flowers_mobilenet_v2_0.35_128_fft" / "mobilenet_v2_0.35_128_fft.h5",
            "chain_eqeb",
            flowers,
            "1/127.5",
            -1,
            "TFlite_converter",
            FLOWERS,
        ),
        "flowers_mobilenet_v2_onnx": _config(
            MODELS / "flowers_onnx" / "mobilenet_v2_0.35_128_tfs_channel_first.onnx",
            "chain_eqeb",
            flowers,
            "1/127.5",
            -1,
            "Onnx_quantizer",
            FLOWERS,
        ),
        "cifar10_resnet8": _config(
            MODELS / "cifar10_resnet8" / "pretrainedResnet.h5", "chain_eqeb", cifar, "1", 0, "TFlite_converter", CIFAR10
        ),
        "vww_mobilenet_v1": _config(
            MODELS / "vww_mobilenet_v1_0.25_96" / "mobilenet_v1_0.25_96.h5",
            "chain_qb",
            ["non_person", "person"],
            "1/255",
            0,
            "TFlite_converter",
            None,
        ),
    }
    target = folder / "configs"
    target.mkdir()
    for name, config in configs.items():
        config["mlflow"] = {"uri": str(folder / "mlruns")}
        config["hydra"] = {"run": {"dir": str(folder / "runs")}}
        (target / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def run_sweep(folder: Path, configs: Path, executor: str, jobs: int) -> tuple[float, dict]:
    """Wall seconds and sweep.json of one sweep, with an empty statistics cache."""
    name = f"{executor}_{jobs}"
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / f"cache_{name}"), "PYTHONPATH": str(ROOT)}
    out = folder / name
    command = stquant_command("sweep", str(configs), *VARY, "--board", BOARD, "--progress", "none")
    command += ["--executor", executor, "--jobs", str(jobs), "--output-dir", str(out)]
    wall, _ = measure(command, env=env, cwd=ROOT)
    return wall, json.loads((out / "sweep.json").read_text())


def _cells(sweep: dict) -> list[tuple]:
    return [tuple(cell[key] for key in FIGURES) for cell in sweep["cells"]]


def separate_runs(folder: Path, sweep: dict) -> list[tuple]:
    """The figures of a separate `stquant run` of each cell's config with the cell's overrides."""
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache_separate"), "PYTHONPATH": str(ROOT)}
    figures = []
    for cell in sweep["cells"]:
        out = folder / "separate" / str(cell["index"])
        measure(
            stquant_command("run", cell["config"], *cell["overrides"], "--output-dir", str(out), "--progress", "none"),
            env=env,
            cwd=ROOT,
        )
        summary = json.loads((out / "run_summary.json").read_text())
        accuracy, footprint = summary.get("accuracy") or {}, summary["footprint"]
        figures.append(
            (
                accuracy.get("float"),
                accuracy.get("quantized"),
                accuracy.get("agreement"),
                footprint["weights_flash_kib"],
                footprint["activation_ram_kib"],
            )
        )
    return figures


def main() -> None:
    if not MODELS.exists():
        raise SystemExit(f"the shared models are not at {MODELS} (see ../shared/assets/README.md)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        configs = write_configs(folder)
        results = [(executor, jobs, *run_sweep(folder, configs, executor, jobs)) for executor, jobs in RUNS]
        separate = separate_runs(folder, results[0][3])
    base = results[0][2]
    print(f"4 configs x 2 variants = {len(results[0][3]['cells'])} cells, estimated on the {BOARD}\n")
    print("| executor | workers | wall s | ratio to --jobs 1 | cells ok | same figures as a separate run per cell |")
    print("|---|---|---|---|---|---|")
    for executor, jobs, wall, sweep in results:
        same = "yes" if _cells(sweep) == separate else "NO"
        print(
            f"| {executor} | {jobs} | {wall:.1f} | {wall / base:.2f} | {sweep['done']}/{len(sweep['cells'])} | {same} |"
        )
    print(
        "\n| config | variant | float acc % | int8 acc % | agreement % | weights flash KiB | activation RAM KiB "
        "| est. ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for cell in results[0][3]["cells"]:
        figures = [cell[key] for key in (*FIGURES, "estimated_inference_ms")]
        shown = " | ".join("" if value is None else f"{value:.2f}" for value in figures)
        print(f"| {Path(cell['config']).stem} | {cell['variant']} | {shown} |")


if __name__ == "__main__":
    from docs_tables import section

    with section("sweep_scaling"):
        main()
