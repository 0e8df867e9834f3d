"""The shared tutorial setup of the benchmarks that time stquant against the reference's algorithm: paths to the
model-zoo assets, the tutorial config and the floor commands (what any run of the tutorial `.h5` pays before it
sees an image)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "assets/models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5"
PHOTOS = SHARED / "assets/datasets/flower_photos"
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
REFERENCE = SHARED / "bench/st_style_quantize.py"

# A Python process that imports TensorFlow as the stquant CLI does (tf_keras preloaded), then also loads the .h5:
# quantizing through the TFLite converter needs both (a run that finds the converter's float graph in the statistics
# cache needs TensorFlow only).
FLOOR = {
    "floor: import tensorflow": "import tensorflow",
    "floor: + load the .h5": f"import tensorflow, tf_keras; tf_keras.models.load_model({str(MODEL)!r}, compile=False)",
}
TF_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # as the stquant CLI sets them


def tutorial_config(folder: Path, split: float, images: Path = PHOTOS, name: str | None = None) -> Path:
    """The sample config on the tutorial model, calibrating on `images` (class folders of flower photos)."""
    config = yaml.safe_load((ROOT / "sample_configs/quantization_config.yaml").read_text())
    config["general"]["model_path"] = str(MODEL)
    config["dataset"] = {"class_names": CLASSES, "quantization_path": str(images), "quantization_split": split}
    config["mlflow"]["uri"] = str(folder / "mlruns")
    path = folder / f"{name or f'tutorial_{split}'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
