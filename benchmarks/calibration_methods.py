"""Benchmark: `quantization.calibration_method` on the tutorial model, both quantizers, held-out photos.

The 300 flower photos are split in `--folds` folds (photo i is in fold i mod folds, so every class is in every
fold): each fold in turn calibrates (per-channel int8, uint8 in, float out: the tutorial's settings) and the
other photos are held out. Agreement is the share of held-out photos whose top-1 class equals the float
model's (every photo is held out folds - 1 times), accuracy against the sorted class-folder labels; the
quantized models run with `engine.evaluation.predictors.load_predictor` (QDQ emulated where ONNX Runtime's int8
kernels would saturate), as `stquant run` evaluates them. ST's shipped int8 of the model is measured the same
way (it was not calibrated on these photos: its figure on every fold is its figure on all 300). The TFLite
route measures the histograms once per fold (statistics cache in memory); ONNX Runtime calibrates each method.
Run from the project root:

    python benchmarks/calibration_methods.py [--assets ../shared/assets] [--folds 5]
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
from engine.models.load import load_keras_model
from engine.quantize.cache import StatsCache
from engine.quantize.histograms import METHODS

CACHE = StatsCache(persist=False)  # the TFLite route's statistics, shared by the methods of a fold
FOLDER = Path("models/flowers_mobilenet_v2_0.35_128_fft")
MODEL, SHIPPED = FOLDER / "mobilenet_v2_0.35_128_fft.h5", FOLDER / "mobilenet_v2_0.35_128_fft_int8.tflite"
PHOTOS = Path("datasets/flower_photos")
ROUTES = {"tflite": "TFlite_converter", "onnx": "Onnx_quantizer"}
SPEC = ImageSpec(128, 128, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)


def photos(root: Path) -> tuple[list[Path], np.ndarray]:
    """Image files (classes sorted, files sorted) and their labels (sorted class-folder index)."""
    files, labels = [], []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(folder.iterdir()):
            files.append(path)
            labels.append(label)
    return files, np.asarray(labels)


def top1(model: Path, images: np.ndarray) -> np.ndarray:
    predictor = load_predictor(model)
    return np.concatenate([predictor.predict(images[i : i + 32]).argmax(1) for i in range(0, len(images), 32)])


def quantize(
    route: str, method: str, model: Path, keras_model: object, calibration: ImageCalibrationData, work: Path
) -> Path:
    """The int8 model of `route` and `method` (per-channel, uint8 in, float out), in `work`."""
    settings = Quantization(
        quantizer=ROUTES[route],
        quantization_input_type="uint8",
        quantization_output_type="float",
        granularity="per_channel",
        calibration_method=method,
    )
    if route == "tflite":
        from engine.quantize.tflite import quantize_tflite

        return quantize_tflite(
            model, calibration, settings, work / "model.tflite", model=keras_model, cache=CACHE
        ).model_path
    from engine.quantize.onnx import quantize_onnx

    return quantize_onnx(model, calibration, settings, work, work, model=keras_model).model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    model = args.assets / MODEL
    files, labels = photos(args.assets / PHOTOS)
    images, kept = decode_all(files, SPEC)
    files, labels = [files[i] for i in kept], labels[kept]
    reference = top1(model, images)
    keras_model = load_keras_model(model)
    folds = [np.arange(len(files)) % args.folds == f for f in range(args.folds)]
    shipped = top1(args.assets / SHIPPED, images)
    print(
        f"Tutorial model, {len(files)} photos in {args.folds} folds ({sum(folds[0])} calibration, "
        f"{len(files) - sum(folds[0])} held out per fold); float accuracy {np.mean(reference == labels):.2%}.\n"
    )
    header = ["quantizer", "calibration_method", "agreement (all folds)", "agreement by fold, min–max"]
    print(f"| {' | '.join([*header, 'accuracy', 's per fold'])} |")
    print("|---|---|---|---|---|---|")
    for route in ROUTES:
        for method in METHODS:
            agree, correct, by_fold, seconds = 0, 0, [], 0.0
            for fold in folds:
                started = time.perf_counter()
                calibration = ImageCalibrationData([f for f, c in zip(files, fold) if c], SPEC, "benchmark")
                with tempfile.TemporaryDirectory() as tmp:
                    quantized = quantize(route, method, model, keras_model, calibration, Path(tmp))
                    predictions = top1(quantized, images[~fold])
                seconds += time.perf_counter() - started
                agree += int(np.sum(predictions == reference[~fold]))
                correct += int(np.sum(predictions == labels[~fold]))
                by_fold.append(np.mean(predictions == reference[~fold]))
            held = sum(int(np.sum(~fold)) for fold in folds)
            print(
                f"| {route} | {method} | {agree / held:.2%} | {min(by_fold):.2%}–{max(by_fold):.2%} | "
                f"{correct / held:.2%} | {seconds / len(folds):.1f} |",
                flush=True,
            )
    print(
        f"| ST's shipped int8 | – | {np.mean(shipped == reference):.2%} | (not calibrated here) | "
        f"{np.mean(shipped == labels):.2%} | – |"
    )


if __name__ == "__main__":
    from docs_tables import section

    with section("calibration_methods"):
        main()
