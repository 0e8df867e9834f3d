"""Benchmark: `stquant run` on the tutorial config vs the reference's algorithm, same machine, same job.

The reference (../shared/bench/st_style_quantize.py) decodes one image per tf.data step and converts
through Keras' SavedModel export. Both run as child processes, alternated, each case repeated; the
table prints the median wall time and peak RSS and their ratios (ours / reference). Ours is the whole
`stquant run` (quantization, per-layer error report, footprint), without MLflow logging, which the
reference script does not do either.
usage: python benchmarks/quantize_vs_reference.py [--repeat N]
"""

import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from measure import measure, ratio_table, repeat_count, stquant_command

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "assets/models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5"
PHOTOS = SHARED / "assets/datasets/flower_photos"
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
REFERENCE = SHARED / "bench/st_style_quantize.py"


def tutorial_config(folder: Path, split: float, images: Path = PHOTOS, name: str | None = None) -> Path:
    """The sample config on the tutorial model, calibrating on `images` (class folders of flower photos)."""
    config = yaml.safe_load((ROOT / "sample_configs/quantization_config.yaml").read_text())
    config["general"]["model_path"] = str(MODEL)
    config["dataset"] = {"class_names": CLASSES, "quantization_path": str(images), "quantization_split": split}
    config["mlflow"]["uri"] = str(folder / "mlruns")
    path = folder / f"{name or f'tutorial_{split}'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    repeat = repeat_count(MODEL)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for split in (0.4, 1.0):
            config = tutorial_config(folder, split)
            ours, ref = [], []
            for i in range(repeat):
                ref.append(
                    measure(
                        [
                            sys.executable,
                            str(REFERENCE),
                            str(MODEL),
                            str(PHOTOS),
                            str(split),
                            str(folder / "ref.tflite"),
                        ]
                    )
                )
                ours.append(
                    measure(
                        stquant_command(
                            "run", str(config), "--progress", "none", "--output-dir", str(folder / f"ours_{split}_{i}")
                        ),
                        cwd=ROOT,
                    )
                )
            median = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731 - a one-line local helper
            rows.append(
                (
                    f"split {split} ({int(300 * split)} images)",
                    median(ours, 0),
                    median(ref, 0),
                    median(ours, 1),
                    median(ref, 1),
                )
            )
            print(ratio_table(rows[-1:]), flush=True)
    print("\nmedian of", repeat, "alternated runs per case")
    print(ratio_table(rows))


if __name__ == "__main__":
    from docs_tables import section

    with section("quantize_vs_reference"):
        main()
