"""Benchmark: `quantization.calibration_method` on the tutorial model, both quantizers, held-out photos.

The 300 flower photos are split in `--folds` folds (photo i is in fold i mod folds, so every class is in every
fold), in two ways (`--splits`): `fold` (each fold calibrates in turn, the other photos are held out: every photo
is held out folds - 1 times) and `rest` (each fold is held out in turn, the other folds calibrate: every photo is
held out once). Calibration is per-channel int8, uint8 in, float out (the tutorial's settings). On the held-out
photos: agreement is the share whose top-1 class equals the float model's, accuracy is against the sorted
class-folder labels, output SQNR is 10 log10(sum of the float scores squared / sum of the squared differences of
the int8 scores), pooled over all held-out predictions, and "photos flipped" counts the distinct photos whose top-1
differs from the float model's in at least one fold; after each table, every flipped photo with the float model's
margin (top-1 minus top-2 score) and the rows that flip it. The quantized models run with
`engine.evaluation.predictors.load_predictor` (QDQ emulated where ONNX Runtime's int8 kernels would saturate), as
`stquant run` evaluates them. ST's shipped int8 of the model is measured on the same held-out photos (it was
calibrated on the model zoo's training split, which holds most of these photos: see ../shared/assets/README.md),
and so is ST's quantization algorithm run today on each fold's calibration photos (`--reference`, the model zoo's
TFLite quantization re-expressed in ../shared/bench/st_style_quantize.py: the plain converter's MinMax; the row is
left out when that script is absent).
The TFLite route measures the histograms once per fold (statistics cache in memory); ONNX Runtime calibrates each
method. Run from the project root:

    python benchmarks/calibration_methods.py [--assets ../shared/assets] [--folds 5] [--splits fold rest] [--reference SCRIPT]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
REFERENCE = Path("bench/st_style_quantize.py")
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


def scores(model: Path, images: np.ndarray) -> np.ndarray:
    """The output scores of `model` on `images`, in batches of 32."""
    predictor = load_predictor(model)
    return np.concatenate([predictor.predict(images[i : i + 32]) for i in range(0, len(images), 32)])


def sqnr(quantized: np.ndarray, reference: np.ndarray) -> float:
    """10 log10(sum reference^2 / sum (quantized - reference)^2), in dB."""
    return float(10 * np.log10(np.sum(reference**2) / np.sum((quantized - reference) ** 2)))


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


SPLITS = {
    "fold": "each fold calibrates, the other photos are held out",
    "rest": "each fold is held out, the other folds calibrate",
}


@dataclass
class Row:
    """What one quantized model (or ST's) gave on the held-out photos of every fold."""

    label: list[str]
    agreement: list[float] = field(default_factory=list)  # by fold
    held: list[np.ndarray] = field(default_factory=list)  # held-out photo indices, by fold
    scores: list[np.ndarray] = field(default_factory=list)  # their int8 scores, by fold
    seconds: float = 0.0

    def add(self, held: np.ndarray, scores: np.ndarray, reference: np.ndarray) -> None:
        self.held.append(held)
        self.scores.append(scores)
        self.agreement.append(float(np.mean(scores.argmax(1) == reference[held].argmax(1))))

    def flipped(self, reference: np.ndarray) -> set[int]:
        """The photos whose top-1 differs from the float model's in at least one fold."""
        return {int(i) for h, s in zip(self.held, self.scores) for i in h[s.argmax(1) != reference[h].argmax(1)]}

    def line(self, reference: np.ndarray, labels: np.ndarray) -> str:
        held, predicted = np.concatenate(self.held), np.concatenate(self.scores)
        agree = np.mean(predicted.argmax(1) == reference[held].argmax(1))
        seconds = f"{self.seconds / len(self.held):.1f}" if self.seconds else "–"
        return (
            f"| {' | '.join(self.label)} | {agree:.2%} | {min(self.agreement):.2%}–{max(self.agreement):.2%} | "
            f"{sqnr(predicted, reference[held]):.2f} | {len(self.flipped(reference))} | "
            f"{np.mean(predicted.argmax(1) == labels[held]):.2%} | {seconds} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), default=list(SPLITS))
    parser.add_argument("--reference", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / REFERENCE)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    model = args.assets / MODEL
    files, labels = photos(args.assets / PHOTOS)
    images, kept = decode_all(files, SPEC)
    files, labels = [files[i] for i in kept], labels[kept]
    reference = scores(model, images)
    keras_model = load_keras_model(model)
    shipped = scores(args.assets / SHIPPED, images)
    accuracy = np.mean(reference.argmax(1) == labels)
    print(f"Tutorial model, {len(files)} photos in {args.folds} folds; float accuracy {accuracy:.2%}.")
    for split in args.splits:
        folds = [np.arange(len(files)) % args.folds == f for f in range(args.folds)]
        pairs = [(fold, ~fold) if split == "fold" else (~fold, fold) for fold in folds]
        print(
            f"\n**Split `{split}`**: {SPLITS[split]} ({int(sum(pairs[0][0]))} calibration, "
            f"{int(sum(pairs[0][1]))} held out per fold).\n"
        )
        rows = [
            measure(route, method, pairs, files, images, model, keras_model, reference)
            for route in ROUTES
            for method in METHODS
        ]
        if args.reference.is_file():
            rows.append(reference_row(args.reference, pairs, files, images, model, reference))
        st_row = Row(["ST's shipped int8", "–"])
        for _, held in pairs:
            st_row.add(np.flatnonzero(held), shipped[held], reference)
        table([*rows, st_row], files, reference, labels)


def measure(
    route: str,
    method: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    files: list[Path],
    images: np.ndarray,
    model: Path,
    keras_model: object,
    reference: np.ndarray,
) -> Row:
    """Quantize with `method` on the calibration photos of each fold and score its held-out photos."""
    row = Row([route, method])
    for calibrate, held in pairs:
        started = time.perf_counter()
        calibration = ImageCalibrationData([f for f, c in zip(files, calibrate) if c], SPEC, "benchmark")
        with tempfile.TemporaryDirectory() as tmp:
            quantized = quantize(route, method, model, keras_model, calibration, Path(tmp))
            row.add(np.flatnonzero(held), scores(quantized, images[held]), reference)
        row.seconds += time.perf_counter() - started
    return row


def reference_row(
    script: Path,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    files: list[Path],
    images: np.ndarray,
    model: Path,
    reference: np.ndarray,
) -> Row:
    """ST's algorithm (`script MODEL DATA_DIR SPLIT OUT`) calibrated on each fold's photos (a folder of links to
    them, split 1.0: all of them), scored on its held-out photos."""
    row = Row(["ST's algorithm", "minmax"])
    for calibrate, held in pairs:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for path in (f for f, c in zip(files, calibrate) if c):
                (Path(tmp) / "data" / path.parent.name).mkdir(parents=True, exist_ok=True)
                os.symlink(path.resolve(), Path(tmp) / "data" / path.parent.name / path.name)
            out = Path(tmp) / "model.tflite"
            command = [sys.executable, str(script), str(model), str(Path(tmp) / "data"), "1.0", str(out)]
            subprocess.run(command, check=True, capture_output=True)
            row.add(np.flatnonzero(held), scores(out, images[held]), reference)
        row.seconds += time.perf_counter() - started
    return row


def table(rows: list[Row], files: list[Path], reference: np.ndarray, labels: np.ndarray) -> None:
    """The rows, then each flipped photo with the float model's margin and the rows that flip it."""
    header = ["quantizer", "calibration_method", "agreement (all folds)", "agreement by fold, min–max"]
    header += ["output SQNR dB", "photos flipped", "accuracy", "s per fold"]
    print(f"| {' | '.join(header)} |")
    print(f"|{'---|' * len(header)}")
    for row in rows:
        print(row.line(reference, labels), flush=True)
    ordered = np.sort(reference, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    flips = [row.flipped(reference) for row in rows]
    print("\nFlipped photos, with the float model's margin (top-1 minus top-2 score) and the rows that flip them:\n")
    for photo in sorted(set().union(*flips), key=lambda i: margin[i]):
        by = ", ".join(" ".join(row.label).replace(" –", "") for row, f in zip(rows, flips) if photo in f)
        print(f"- {files[photo].parent.name}/{files[photo].name}: {margin[photo]:.3f}; {by}")


if __name__ == "__main__":
    from docs_tables import section

    with section("calibration_methods"):
        main()
