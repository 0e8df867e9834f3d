"""Fit the cycle coefficients of `engine/footprint/timing.py` on published STM32H747I-DISCO times.

Fit set: the shared model-zoo files (`footprint_vs_cubeai.PUBLISHED`) and MobileNet v2 0.35 128
ImageNet (rebuilt with Keras: the one published model with a large dense head). Least squares
on the relative error; prints the coefficients to paste into `CYCLES` and the fit error per model.

Then `FLOAT_FACTOR`: the published float time of ST MNIST v1 over its published int8 time (same board, same
release, `tests/cubeai_published.ST_MNIST_MS`), and the estimates of that model rebuilt with Keras (random
weights) in float and in int8 next to the published times.

    python benchmarks/fit_inference_time.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import footprint_vs_cubeai as bench
from engine.footprint import estimate_footprint
from engine.footprint.tflite import read_tflite
from engine.footprint.timing import CYCLES, FLOAT_FACTOR, cost_kind, cost_units
from tests.cubeai_published import ST_MNIST_MS

MHZ = 400
EXTRA = "mobilenet_v2_0.35_128 (ImageNet, in the time fit)"


def features(model: Path) -> list[float]:
    """Units charged per cost kind (the columns of the fit), in `CYCLES` order."""
    graph = read_tflite(model)
    totals = dict.fromkeys(CYCLES, 0.0)
    for op in graph.ops:
        kind = cost_kind(op)
        if kind:
            totals[kind] += cost_units(graph, op)
    return list(totals.values())


def main() -> None:
    models = {Path(rel).name: (bench.ASSETS / rel, p.h747_ms) for rel, p in bench.PUBLISHED.items()}
    spec, _, ms = bench.HELDOUT[EXTRA]
    models[EXTRA] = (bench._build_int8(EXTRA, spec, bench.default_cache()), ms)  # noqa: SLF001 - reuses the sibling benchmark
    x = np.array([features(path) for path, _ in models.values()])
    cycles = np.array([ms * MHZ * 1000 for _, ms in models.values()])
    weights = 1 / cycles
    coef, *_ = np.linalg.lstsq(x * weights[:, None], cycles * weights, rcond=None)
    print("CYCLES =", {kind: round(float(c), 4) for kind, c in zip(CYCLES, coef)})
    for name, predicted, measured in zip(models, x @ coef, cycles):
        print(f"  {name:50} {100 * (predicted / measured - 1):+6.1f} %")
    float_factor(bench.default_cache())


def _st_mnist(keras: ModuleType) -> Any:
    """ST MNIST v1 as the model zoo's services build it (`get_stmnist`): 28x28x1, 36 classes."""
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for layer in (
        layers.Conv2D(16, 3, strides=2, padding="same"),
        layers.DepthwiseConv2D(3, padding="same"),
        layers.Conv2D(32, 3, padding="same"),
        layers.DepthwiseConv2D(3, strides=2, padding="same"),
        layers.Conv2D(64, 1),
    ):
        x = layers.ReLU()(layers.BatchNormalization()(layer(x)))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(36, activation="softmax")(x))


def _st_mnist_tflite(quantized: bool, cache: Path) -> Path:
    """The rebuilt ST MNIST v1 as float32 TFLite, or int8 with a uint8 input like the model zoo's file."""
    path = cache / f"st_mnist_v1_28_{'int8' if quantized else 'float'}.tflite"
    if path.exists():
        return path
    import contextlib

    import keras
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(_st_mnist(keras))
    if quantized:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random((1, 28, 28, 1), np.float32)] for _ in range(2))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    cache.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # the converter's own printout is not part of the output
        path.write_bytes(converter.convert())
    return path


def float_factor(cache: Path) -> None:
    """Print the float/int8 cycle ratio the published ST MNIST v1 times give, and our estimates of that model."""
    ratio = ST_MNIST_MS["float"] / ST_MNIST_MS["int8"]
    print(f"\nFLOAT_FACTOR = {ratio:.2f} (ST MNIST v1, published float ms / int8 ms; in use: {FLOAT_FACTOR})")
    for kind in ("int8", "float"):
        ours = estimate_footprint(_st_mnist_tflite(kind == "int8", cache), board="STM32H747I-DISCO")
        published = ST_MNIST_MS[kind]
        assert ours.estimated_inference_ms is not None  # a Cortex-M7 board
        ms = ours.estimated_inference_ms
        error = 100 * (ms / published - 1)
        print(f"  ST MNIST v1 {kind:5}  ours {ms:6.2f} ms, published {published} ms, {error:+.1f} %")


if __name__ == "__main__":
    from docs_tables import section

    with section("fit_inference_time", preformatted=True):
        main()
