"""stquant footprint against STM32Cube.AI's published figures (activation RAM, STM32H747I-DISCO time).

Part 1, the shared model-zoo files (`../shared/assets/models/cubeai_reference/` and the tutorial
model): our estimate next to the published 10.0 figure (7.3 for ResNet v1 8), error in percent.
Part 2, STM32Cube.AI's MLPerf Tiny v1.0 times of the two MLCommons files on same-core boards (M7,
M33, M4). Part 3, held out: model-zoo architectures at resolutions and widths whose .tflite files we do not
have, rebuilt with Keras (random weights: int8 RAM and time do not depend on weight values),
quantized with the TFLite converter (uint8 input, float output, like the model zoo's files), and
compared with the figures of the model zoo's family READMEs
(github.com/STMicroelectronics/stm32ai-modelzoo, image_classification/<family>/README.md).
The inference-time coefficients of `engine/footprint/timing.py` were fitted on part 1 plus
MobileNet v2 0.35 128 ImageNet (marked; `benchmarks/fit_inference_time.py`); the RAM planner has
no constant fitted to these figures (its convolution scratch sizes come from STM32Cube.AI-generated
code, `engine.footprint.graph.conv_scratch_bytes`).

    python benchmarks/footprint_vs_cubeai.py [--skip-heldout] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.footprint import estimate_footprint  # noqa: E402
from tests.cubeai_published import published_figures  # noqa: E402

ASSETS = ROOT.parent / "shared" / "assets" / "models"
BOARD = "STM32H747I-DISCO"

# Published by ST (reference_figures.tsv): activation RAM KiB (newest release: 10.0; 7.3 for ResNet), H747 ms.
PUBLISHED = published_figures(ASSETS)

# MLPerf Tiny v1.0, STMicroelectronics' closed submission (X-CUBE-AI 7.1), median ms per inference
# (github.com/mlcommons/tiny_results_v1.0, closed/STMicroelectronics/results/*/{ic,vww}/performance),
# on boards with the same core and clock as ours: NUCLEO-H7A3ZI-Q ~ STM32H7B3I-DK (Cortex-M7 280 MHz),
# NUCLEO-U575ZI-Q ~ B-U585I-IOT02A (Cortex-M33 160 MHz), NUCLEO-L4R5ZI ~ STM32L4R9I-DISCO (Cortex-M4
# 120 MHz). The core factors of timing.py are these cycle ratios, so only the M7 row is independent.
MLPERF = {
    "cifar10_resnet8/pretrainedResnet_quant.tflite": {
        "STM32H7B3I-DK": 1000 / 18.401, "B-U585I-IOT02A": 1000 / 7.158, "STM32L4R9I-DISCO": 1000 / 4.407},
    "vww_mobilenet_v1_0.25_96/mobilenet_v1_0.25_96_int8.tflite": {
        "STM32H7B3I-DK": 1000 / 19.722, "B-U585I-IOT02A": 1000 / 7.496, "STM32L4R9I-DISCO": 1000 / 4.339},
}

# name: (builder arguments, published activation RAM KiB, published H747 ms), Cube.AI 10.0.
HELDOUT = {
    "mobilenet_v1_0.25_96_fft": (("mobilenet", 0.25, (96, 96, 3), 5), 66.96, 29.94),
    "mobilenet_v1_0.25_96_grayscale_tfs": (("mobilenet", 0.25, (96, 96, 1), 5), 52.8, 28.34),
    "mobilenet_v1_0.5_224_fft": (("mobilenet", 0.5, (224, 224, 3), 5), 449.58, 485.79),
    "mobilenet_v1_1.0_224 (ImageNet)": (("mobilenet", 1.0, (224, 224, 3), 1000), 1331.13, 1641.84),
    "mobilenet_v2_0.35_224_fft": (("mobilenet_v2", 0.35, (224, 224, 3), 5), 832.64, 290.75),
    "mobilenet_v2_0.35_128 (ImageNet, in the time fit)": (("mobilenet_v2", 0.35, (128, 128, 3), 1000), 237.32, 116.13),
    "mobilenet_v2_1.0_224 (ImageNet)": (("mobilenet_v2", 1.0, (224, 224, 3), 1000), 1727.02, 1106.64),
    "fdmobilenet_0.25_224_tfs": (("fdmobilenet", 0.25, (224, 224, 3), 5), 157.03, 53.52),
}


def default_cache() -> Path:
    """Where rebuilt held-out models are kept between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stquant" / "footprint_heldout"


def _keras_model(family: str, alpha: float, shape: tuple[int, int, int], classes: int):
    import keras

    if family == "fdmobilenet":
        return _fd_mobilenet(keras, alpha, shape, classes)
    app = {"mobilenet": keras.applications.MobileNet, "mobilenet_v2": keras.applications.MobileNetV2}[family]
    if classes == 1000:  # ImageNet files: the application's own head
        return app(alpha=alpha, input_shape=shape, weights=None, classes=1000)
    base = app(alpha=alpha, input_shape=shape, weights=None, include_top=False, pooling="avg")
    return keras.Model(base.input, keras.layers.Dense(classes, activation="softmax")(base.output))


def _fd_mobilenet(keras, alpha: float, shape: tuple[int, int, int], classes: int):
    """FD-MobileNet (Qin et al. 2018) as the model zoo builds it: 3x3/2 conv, then depthwise/pointwise
    pairs, five of them strided, global average, 1x1 conv classifier."""
    layers = keras.layers
    inputs = keras.Input(shape)
    x = layers.ReLU()(layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same")(inputs))
    plan = [(2, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 4 + [(1, 1024)]
    for stride, width in plan:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same")(x)
        x = layers.ReLU()(layers.Conv2D(int(width * alpha), 1)(x))
    x = layers.Reshape((1, 1, -1))(layers.GlobalAveragePooling2D()(x))
    x = layers.Flatten()(layers.Softmax()(layers.Conv2D(classes, 1)(x)))
    return keras.Model(inputs, x)


def _build_int8(name: str, spec: tuple, cache: Path) -> Path:
    path = cache / f"{name.split(' ')[0]}{'_imagenet' if '(' in name else ''}_int8.tflite"
    if path.exists():
        return path
    import numpy as np
    import tensorflow as tf

    model = _keras_model(*spec)
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.random((1, *spec[2]), np.float32)] for _ in range(2))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())
    return path


def _row(name: str, model: Path, ram: float, ms: float, board: str = BOARD) -> tuple[str, float, float]:
    fp = estimate_footprint(model, board=board)
    ram_err = 100 * (fp.activation_ram_kib / ram - 1)
    ms_err = 100 * (fp.estimated_inference_ms / ms - 1)
    print(f"| {name} | {fp.activation_ram_kib:.2f} | {ram:.2f} | {ram_err:+.1f} % | "
          f"{fp.estimated_inference_ms:.2f} | {ms:.2f} | {ms_err:+.1f} % |")
    return name, ram_err, ms_err


def _summary(rows: list[tuple[str, float, float]]) -> None:
    ram, ms = [abs(r[1]) for r in rows], [abs(r[2]) for r in rows]
    print(f"\nmean |error|: RAM {sum(ram) / len(ram):.1f} % (max {max(ram):.1f} %), "
          f"time {sum(ms) / len(ms):.1f} % (max {max(ms):.1f} %)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-heldout", action="store_true", help="only the shared files")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the rebuilt held-out models are kept")
    args = parser.parse_args()
    header = ("| model | RAM ours KiB | RAM published | error | time ours ms | time published | error |\n"
              "|---|---|---|---|---|---|---|")
    print(f"Shared files ({BOARD}, STM32Cube.AI 10.0; ResNet v1 8: 7.3)\n\n{header}")
    _summary([_row(Path(rel).name, ASSETS / rel, p.activation_ram_kib, p.h747_ms) for rel, p in PUBLISHED.items()])
    for rel, ms in ((rel, p.f769_ms) for rel, p in PUBLISHED.items() if p.f769_ms):
        print("STM32F769I-DISCO (216 MHz) check, time only:")
        fp = estimate_footprint(ASSETS / rel, board="STM32F769I-DISCO")
        print(f"  {Path(rel).name}: {fp.estimated_inference_ms:.2f} ms, published {ms} ms, "
              f"{100 * (fp.estimated_inference_ms / ms - 1):+.1f} %\n")
    print("MLPerf Tiny v1.0 (X-CUBE-AI 7.1), time only:\n\n| model | board | ours ms | published ms | error |\n"
          "|---|---|---|---|---|")
    for rel, boards in MLPERF.items():
        for board, ms in boards.items():
            ours = estimate_footprint(ASSETS / rel, board=board).estimated_inference_ms
            print(f"| {Path(rel).name} | {board} | {ours:.2f} | {ms:.2f} | {100 * (ours / ms - 1):+.1f} % |")
    print()
    if args.skip_heldout:
        return
    print(f"Held out (rebuilt with Keras, random weights; {BOARD}, STM32Cube.AI 10.0)\n\n{header}")
    rows = [_row(name, _build_int8(name, spec, args.cache), ram, ms) for name, (spec, ram, ms) in HELDOUT.items()]
    _summary([row for row in rows if "in the time fit" not in row[0]])


if __name__ == "__main__":
    main()
