"""Quantization quality of the tutorial model on the flower photos, through the engine's own quantizers.

For each quantizer (TFLite, ONNX QDQ) and variant (per-channel, per-tensor, each with and without
`optimize`), the model is quantized by `quantize_tflite`/`quantize_onnx` calibrating on every photo
(nearest resize, x/127.5 - 1, as the tutorial config) and run with `engine.evaluation.predictors.load_predictor`
(QDQ models emulated exactly where ONNX Runtime's int8 kernels would saturate), so the figures are
what users get. Labels are the sorted class-folder indices. Run from the project root:

    python benchmarks/quantization_quality.py [--assets ../shared/assets]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config.schema import Quantization
from engine.data.calibration import ImageCalibrationData
from engine.data.images import decode_all
from engine.data.preprocess import ImageSpec
from engine.evaluation.predictors import load_predictor

MODEL = Path("models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5")
PHOTOS = Path("datasets/flower_photos")
SPEC = ImageSpec(128, 128, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)
VARIANTS = [
    ("per-channel", "per_channel", False),
    ("per-tensor", "per_tensor", False),
    ("per-tensor + optimize", "per_tensor", True),
    ("per-channel + optimize", "per_channel", True),
]


def settings(quantizer: str, granularity: str, optimize: bool) -> Quantization:
    """The tutorial's quantization section (uint8 in, float out)."""
    return Quantization(
        quantizer=quantizer,
        quantization_input_type="uint8",
        quantization_output_type="float",
        granularity=granularity,
        optimize=optimize,
    )


def photos(root: Path) -> tuple[list[Path], np.ndarray]:
    """Image files (classes sorted, files sorted) and their labels (sorted class-folder index)."""
    files, labels = [], []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(folder.iterdir()):
            files.append(path)
            labels.append(label)
    return files, np.asarray(labels)


def quantize(
    route: str, model: Path, calibration: ImageCalibrationData, granularity: str, optimize: bool, work: Path
) -> Path:
    if route == "tflite":
        from engine.quantize.tflite import quantize_tflite

        return quantize_tflite(
            model, calibration, settings("TFlite_converter", granularity, optimize), work / "quantized_model.tflite"
        ).model_path
    from engine.quantize.onnx import quantize_onnx

    return quantize_onnx(model, calibration, settings("Onnx_quantizer", granularity, optimize), work, work).model_path


def top1(model: Path, images: np.ndarray) -> np.ndarray:
    predictor = load_predictor(model)
    return np.concatenate([predictor.predict(images[i : i + 32]).argmax(1) for i in range(0, len(images), 32)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    files, labels = photos(args.assets / PHOTOS)
    images, kept = decode_all(files, SPEC)
    labels = labels[kept]
    model = args.assets / MODEL
    reference = top1(model, images)
    print(f"float: accuracy {np.mean(reference == labels):.2%} on {len(images)} photos")
    print(f"{'quantizer':9} {'variant':24} {'agree':>7} {'accuracy':>9} {'seconds':>8}")
    for route in ("tflite", "onnx"):
        for name, granularity, optimize in VARIANTS:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                calibration = ImageCalibrationData([files[i] for i in kept], SPEC, "benchmark")
                quantized = quantize(route, model, calibration, granularity, optimize, Path(tmp))
                predictions = top1(quantized, images)
            print(
                f"{route:9} {name:24} {np.mean(predictions == reference):7.2%} "
                f"{np.mean(predictions == labels):9.2%} {time.perf_counter() - start:8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    from docs_tables import section

    with section("quantization_quality", preformatted=True):
        main()
