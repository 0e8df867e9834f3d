"""Benchmark: `quantization.calibration_method` (with and without `bias_correction`) on the tutorial model, both
quantizers, held-out photos.

The 300 flower photos are split in `--folds` folds (photo i is in fold i mod folds, so every class is in every
fold), in two ways (`--splits`): `fold` (each fold calibrates in turn, the other photos are held out: every photo
is held out folds - 1 times) and `rest` (each fold is held out in turn, the other folds calibrate: every photo is
held out once). Calibration is per-channel int8, uint8 in, float out (the tutorial's settings), with every method
on both quantizers, each without and with `quantization.bias_correction` (the remedies `stquant recover` tries
before keeping layers in float; it chooses the method for the whole model, not per layer). On the held-out
photos: agreement is the share whose top-1 class equals the float model's, accuracy is against the sorted
class-folder labels, output SQNR is 10 log10(sum of the float scores squared / sum of the squared differences of
the int8 scores), pooled over all held-out predictions, and "photos flipped" counts the distinct photos whose top-1
differs from the float model's in at least one fold. "calibration SQNR" is the same output SQNR on each fold's
calibration photos (pooled); the "chosen" rows pick, in each fold, the row of the highest calibration SQNR (among
one quantizer's rows, or all of them): the best method by a rule that never sees the held-out photos. After each
table, the rows chosen in each fold, then every flipped photo with the float model's margin (top-1 minus top-2
score) and the rows that flip it. The quantized models run with `engine.evaluation.predictors.load_predictor`
(QDQ emulated where ONNX Runtime's int8 kernels would saturate), as `stquant run` evaluates them. ST's shipped
int8 of the model is measured on the same held-out photos (it was calibrated on the model zoo's training split,
which holds most of these photos: see ../shared/assets/README.md), and so is ST's quantization algorithm run today
on each fold's calibration photos (`--reference`, the model zoo's TFLite quantization re-expressed in
../shared/bench/st_style_quantize.py: the plain converter's MinMax; the row is left out when that script is absent).
The TFLite route measures the histograms once per fold and model (statistics cache in memory); ONNX Runtime
calibrates each method; the bias-corrected model is made once per fold. Run from the project root:

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
from engine.quantize.common import ModelMemo
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
    route: str,
    method: str,
    bias_correction: bool,
    model: Path,
    keras_model: object,
    calibration: ImageCalibrationData,
    work: Path,
    memo: ModelMemo,
) -> Path:
    """The int8 model of `route`, `method` and `bias_correction` (per-channel, uint8 in, float out), in `work`."""
    settings = Quantization(
        quantizer=ROUTES[route],
        quantization_input_type="uint8",
        quantization_output_type="float",
        granularity="per_channel",
        calibration_method=method,
        bias_correction=bias_correction,
    )
    if route == "tflite":
        from engine.quantize.tflite import quantize_tflite

        out = work / "model.tflite"
        return quantize_tflite(model, calibration, settings, out, model=keras_model, cache=CACHE, memo=memo).model_path
    from engine.quantize.onnx import quantize_onnx

    return quantize_onnx(model, calibration, settings, work, work, model=keras_model, memo=memo).model_path


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
    calibration: list[np.ndarray] = field(default_factory=list)  # int8 scores of the calibration photos, by fold
    calibration_sqnr: list[float] = field(default_factory=list)  # by fold
    seconds: float = 0.0

    def add(self, held: np.ndarray, scores: np.ndarray, reference: np.ndarray) -> None:
        self.held.append(held)
        self.scores.append(scores)
        self.agreement.append(float(np.mean(scores.argmax(1) == reference[held].argmax(1))))

    def flipped(self, reference: np.ndarray) -> set[int]:
        """The photos whose top-1 differs from the float model's in at least one fold."""
        return {int(i) for h, s in zip(self.held, self.scores) for i in h[s.argmax(1) != reference[h].argmax(1)]}

    def line(self, reference: np.ndarray, labels: np.ndarray, calibrated: list[np.ndarray]) -> str:
        held, predicted = np.concatenate(self.held), np.concatenate(self.scores)
        agree = np.mean(predicted.argmax(1) == reference[held].argmax(1))
        seconds = f"{self.seconds / len(self.held):.1f}" if self.seconds else "–"
        on_calibration = "–"
        if self.calibration:
            on_calibration = f"{sqnr(np.concatenate(self.calibration), reference[np.concatenate(calibrated)]):.2f}"
        return (
            f"| {' | '.join(self.label)} | {agree:.2%} | {min(self.agreement):.2%}–{max(self.agreement):.2%} | "
            f"{sqnr(predicted, reference[held]):.2f} | {on_calibration} | {len(self.flipped(reference))} | "
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
        rows = measure(pairs, files, images, model, keras_model, reference)
        chosen = [chosen_row(rows, route) for route in [*ROUTES, None]]
        if args.reference.is_file():
            rows.append(reference_row(args.reference, pairs, files, images, model, reference))
        st_row = Row(["ST's shipped int8", "–", "–"])
        for _, held in pairs:
            st_row.add(np.flatnonzero(held), shipped[held], reference)
        calibrated = [np.flatnonzero(calibrate) for calibrate, _ in pairs]
        table([*rows, *(row for row, _ in chosen), st_row], reference, labels, calibrated)
        print("\nRows chosen by calibration SQNR, fold by fold:\n")
        for row, picks in chosen:
            print(f"- {' '.join(row.label[:1])}: {'; '.join(picks)}")
        flips(rows + [row for row, _ in chosen] + [st_row], files, reference)


def measure(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    files: list[Path],
    images: np.ndarray,
    model: Path,
    keras_model: object,
    reference: np.ndarray,
) -> list[Row]:
    """Every route, method and bias correction calibrated on each fold's calibration photos, scored on its held-out
    photos and on its calibration photos; a fold's calibration data and memo (its bias-corrected model, the trace,
    the ONNX conversion) serve all of them."""
    combinations = [(route, method, bias) for bias in (False, True) for route in ROUTES for method in METHODS]
    rows = [Row([route, method, "yes" if bias else "no"]) for route, method, bias in combinations]
    memo = ModelMemo()
    for calibrate, held in pairs:
        calibration = ImageCalibrationData([f for f, c in zip(files, calibrate) if c], SPEC, "benchmark")
        for row, (route, method, bias) in zip(rows, combinations):
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                quantized = quantize(route, method, bias, model, keras_model, calibration, Path(tmp), memo)
                row.add(np.flatnonzero(held), scores(quantized, images[held]), reference)
                on_calibration = scores(quantized, images[calibrate])
            row.calibration.append(on_calibration)
            row.calibration_sqnr.append(sqnr(on_calibration, reference[calibrate]))
            row.seconds += time.perf_counter() - started
    return rows


def chosen_row(rows: list[Row], route: str | None) -> tuple[Row, list[str]]:
    """The rows of `route` (None: all) of the highest calibration SQNR in each fold, as one row; the picks."""
    candidates = [row for row in rows if route is None or row.label[0] == route]
    chosen = Row([f"{route or 'either'}, chosen", "by calibration SQNR", "–"])
    picks = []
    for fold in range(len(candidates[0].held)):
        best = max(candidates, key=lambda row: row.calibration_sqnr[fold])
        chosen.held.append(best.held[fold])
        chosen.scores.append(best.scores[fold])
        chosen.agreement.append(best.agreement[fold])
        chosen.calibration.append(best.calibration[fold])
        chosen.calibration_sqnr.append(best.calibration_sqnr[fold])
        picks.append(" ".join(best.label[:2]) + (" + bias_correction" if best.label[2] == "yes" else ""))
    return chosen, picks


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
    row = Row(["ST's algorithm", "minmax", "no"])
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


def table(rows: list[Row], reference: np.ndarray, labels: np.ndarray, calibrated: list[np.ndarray]) -> None:
    """The rows (`calibrated`: each fold's calibration photo indices)."""
    header = ["quantizer", "calibration_method", "bias_correction", "agreement (all folds)"]
    header += ["agreement by fold, min–max", "output SQNR dB", "calibration SQNR dB", "photos flipped", "accuracy"]
    header += ["s per fold"]
    print(f"| {' | '.join(header)} |")
    print(f"|{'---|' * len(header)}")
    for row in rows:
        print(row.line(reference, labels, calibrated), flush=True)


def flips(rows: list[Row], files: list[Path], reference: np.ndarray) -> None:
    """Each flipped photo with the float model's margin and the rows that flip it."""
    ordered = np.sort(reference, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    flipped = [row.flipped(reference) for row in rows]
    print("\nFlipped photos, with the float model's margin (top-1 minus top-2 score) and the rows that flip them:\n")
    for photo in sorted(set().union(*flipped), key=lambda i: margin[i]):
        by = ", ".join(name(row) for row, f in zip(rows, flipped) if photo in f)
        print(f"- {files[photo].parent.name}/{files[photo].name}: {margin[photo]:.3f}; {by}")


def name(row: Row) -> str:
    """A row's label in a list: quantizer and method, '+ bc' when bias-corrected."""
    route, method, bias = row.label
    return " ".join(part for part in (route, method if method != "–" else "", "+ bc" if bias == "yes" else "") if part)


if __name__ == "__main__":
    from docs_tables import section

    with section("calibration_methods"):
        main()
