"""stquant footprint against STM32Cube.AI's published figures (activation RAM, STM32H747I-DISCO time).

Part 1, the shared model-zoo files (`../shared/assets/models/cubeai_reference/`, both tables, and the
tutorial model): our activation RAM (STM32Cube.AI 8.1's rules) and its upper bound (no overlap) next to
every published release (8.1 and 10.0; ResNet v1 8: 7.3 only), the error against each in percent, and whether
every release lies inside [ours x 0.95, upper x 1.05]; this table also replaces its block in README.md.
Part 2, STM32Cube.AI's MLPerf Tiny v1.0 times of the two MLCommons files on same-core boards (M7,
M33, M4). Part 3, held out: model-zoo architectures at resolutions and widths whose .tflite files we do not
have, rebuilt with Keras (random weights: int8 RAM and time do not depend on weight values),
quantized with the TFLite converter (uint8 input, float output, like the model zoo's files), and
compared with the figures of the model zoo's family READMEs
(github.com/STMicroelectronics/stm32ai-modelzoo, image_classification/<family>/README.md).
Part 4: the activation buffers of two networks whose STM32Cube.AI 8.1-generated code is public (MobileNet v2
0.35 96, ST YOLO LC v1 256), rebuilt with the same layers, against the planner's figure.
The inference-time coefficients of `engine/footprint/timing.py` were fitted on part 1 plus
MobileNet v2 0.35 128 ImageNet (marked; `benchmarks/fit_inference_time.py`); the RAM planner has
no constant fitted to these figures but where a widening 1x1 convolution stops overlapping its input
(`memory_planner.WIDENING_OVERLAP_MAX`, between what 8.1's code and 8.1's MobileNet v1 figures show); its
scratch sizes come from STM32Cube.AI-generated code (`engine.footprint.graph`).

    python benchmarks/footprint_vs_cubeai.py [--skip-heldout] [--cache DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.footprint import estimate_footprint  # noqa: E402 - after the sys.path entry that lets it run as a script
from tests.cubeai_published import (  # noqa: E402 - after the sys.path entry that lets it run as a script
    ALLOCATOR_RELEASE,
    Published,
    allocator_figure,
    published_figures,
    published_releases,
)

ASSETS = ROOT.parent / "shared" / "assets" / "models"
README = ROOT / "README.md"
BOARD = "STM32H747I-DISCO"

# Published by ST (reference_figures*.tsv): activation RAM KiB per release, H747 ms of the newest release.
RELEASES = published_releases(ASSETS)
PUBLISHED = published_figures(ASSETS)

# MLPerf Tiny v1.0, STMicroelectronics' closed submission (X-CUBE-AI 7.1), median ms per inference
# (github.com/mlcommons/tiny_results_v1.0, closed/STMicroelectronics/results/*/{ic,vww}/performance),
# on boards with the same core and clock as ours: NUCLEO-H7A3ZI-Q ~ STM32H7B3I-DK (Cortex-M7 280 MHz),
# NUCLEO-U575ZI-Q ~ B-U585I-IOT02A (Cortex-M33 160 MHz), NUCLEO-L4R5ZI ~ STM32L4R9I-DISCO (Cortex-M4
# 120 MHz). The core factors of timing.py are these cycle ratios, so only the M7 row is independent.
MLPERF = {
    "cifar10_resnet8/pretrainedResnet_quant.tflite": {
        "STM32H7B3I-DK": 1000 / 18.401,
        "B-U585I-IOT02A": 1000 / 7.158,
        "STM32L4R9I-DISCO": 1000 / 4.407,
    },
    "vww_mobilenet_v1_0.25_96/mobilenet_v1_0.25_96_int8.tflite": {
        "STM32H7B3I-DK": 1000 / 19.722,
        "B-U585I-IOT02A": 1000 / 7.496,
        "STM32L4R9I-DISCO": 1000 / 4.339,
    },
}

# name: (builder arguments, published activation RAM KiB, published H747 ms), STM32Cube.AI 10.0.
# 8.1's activation RAM where the model zoo's README publishes it (HELDOUT_81).
HELDOUT_81 = {"mobilenet_v1_0.5_224_fft": 404.66, "fdmobilenet_0.25_224_tfs": 152.05}
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
    if family == "st_yolo_lc":
        return _st_yolo_lc(keras, shape, classes)
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


def _st_yolo_lc(keras, shape: tuple[int, int, int], outputs: int):
    """ST YOLO LC v1's layers as STM32Cube.AI 8.1's c_graph of it lists them (shapes, kernels, strides): four
    3x3/2 convs, depthwise/pointwise pairs, a 2x2/1 max pooling, a 1x1 conv head."""
    layers = keras.layers
    inputs = keras.Input(shape)
    x = inputs
    for width in (16, 32, 64, 128):
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    for width, pool in ((256, False), (256, True), (128, False), (256, False)):
        x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = layers.Conv2D(width, 1, activation="relu")(x)
        if pool:
            x = layers.MaxPooling2D(2, strides=1, padding="same")(x)
    return keras.Model(inputs, layers.Conv2D(outputs, 1)(x))


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
    with contextlib.redirect_stdout(sys.stderr):  # the converter's own printout is not part of the tables
        path.write_bytes(converter.convert())
    return path


HEADER = (
    "| model | RAM ours KiB | upper bound | published KiB (release) | error | in bounds | time ours ms "
    "| time published | error |\n|---|---|---|---|---|---|---|---|---|"
)


class Row:
    """One model's figures: RAM error against the allocator's release (or the only one), bounds, time error."""

    def __init__(self, name: str, model: Path, releases: dict[str, Published], ms: float, board: str = BOARD) -> None:
        fp = estimate_footprint(model, board=board)
        ours, upper = fp.activation_ram_kib, fp.activation_ram_upper_kib
        ordered = sorted(releases.values(), key=lambda p: tuple(int(x) for x in p.release.split(".")))
        self.name = name
        self.ram_err = 100 * (ours / allocator_figure(releases).activation_ram_kib - 1)
        self.in_bounds = all(0.95 * ours <= p.activation_ram_kib <= 1.05 * upper for p in ordered)
        self.ms_err = 100 * (fp.estimated_inference_ms / ms - 1)
        published = ", ".join(f"{p.activation_ram_kib:.2f} ({p.release.rsplit('.', 1)[0]})" for p in ordered)
        errors = ", ".join(f"{100 * (ours / p.activation_ram_kib - 1):+.1f} %" for p in ordered)
        print(
            f"| {name} | {ours:.2f} | {upper:.2f} | {published} | {errors} | {'yes' if self.in_bounds else 'NO'} | "
            f"{fp.estimated_inference_ms:.2f} | {ms:.2f} | {self.ms_err:+.1f} % |"
        )


def _summary(rows: list[Row]) -> None:
    ram, ms = [abs(r.ram_err) for r in rows], [abs(r.ms_err) for r in rows]
    print(
        f"\nRAM against {ALLOCATOR_RELEASE.rsplit('.', 1)[0]} (or the only release published): within 2 % on "
        f"{sum(e <= 2 for e in ram)} of {len(rows)}, mean |error| {sum(ram) / len(ram):.1f} % (max {max(ram):.1f} %); "
        f"every release inside [ours x 0.95, upper x 1.05] on {sum(r.in_bounds for r in rows)} of {len(rows)}; "
        f"time mean |error| {sum(ms) / len(ms):.1f} % (max {max(ms):.1f} %)\n"
    )


def _heldout_releases(name: str, ram: float) -> dict[str, Published]:
    releases = {"10.0.0": Published("10.0.0", ram, 0.0, None)}
    if name in HELDOUT_81:
        releases[ALLOCATOR_RELEASE] = Published(ALLOCATOR_RELEASE, HELDOUT_81[name], 0.0, None)
    return releases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-heldout", action="store_true", help="only the shared files")
    parser.add_argument(
        "--cache", type=Path, default=default_cache(), help="where the rebuilt held-out models are kept"
    )
    args = parser.parse_args()
    from docs_tables import section

    with section("footprint_vs_cubeai", README):  # the README's table too
        print(f"Shared files ({BOARD}; time published: the newest release)\n\n{HEADER}")
        _summary([Row(Path(rel).name, ASSETS / rel, RELEASES[rel], PUBLISHED[rel].h747_ms) for rel in RELEASES])
    for rel, ms in ((rel, p.f769_ms) for rel, p in PUBLISHED.items() if p.f769_ms):
        print("STM32F769I-DISCO (216 MHz) check, time only:")
        fp = estimate_footprint(ASSETS / rel, board="STM32F769I-DISCO")
        print(
            f"  {Path(rel).name}: {fp.estimated_inference_ms:.2f} ms, published {ms} ms, "
            f"{100 * (fp.estimated_inference_ms / ms - 1):+.1f} %\n"
        )
    print(
        "MLPerf Tiny v1.0 (X-CUBE-AI 7.1), time only:\n\n| model | board | ours ms | published ms | error |\n"
        "|---|---|---|---|---|"
    )
    for rel, boards in MLPERF.items():
        for board, ms in boards.items():
            ours = estimate_footprint(ASSETS / rel, board=board).estimated_inference_ms
            print(f"| {Path(rel).name} | {board} | {ours:.2f} | {ms:.2f} | {100 * (ours / ms - 1):+.1f} % |")
    print()
    if args.skip_heldout:
        return
    print(f"Held out (rebuilt with Keras, random weights; {BOARD}; 10.0, and 8.1 where published)\n\n{HEADER}")
    rows = [
        Row(name, _build_int8(name, spec, args.cache), _heldout_releases(name, ram), ms)
        for name, (spec, ram, ms) in HELDOUT.items()
    ]
    _summary([row for row in rows if "in the time fit" not in row.name])
    _generated_code_check(args.cache)


# The activation buffers of STM32Cube.AI 8.1-generated code read in public repositories:
# github.com/Flora233333/STM32-Infer-MobileNetV2, X-CUBE-AI/App/network_generate_report.txt (MobileNet v2 0.35,
# 96x96x3 uint8 input, 15 classes, float output, "activations (rw): 129,536 B"), and
# github.com/Kangzhezhe/STM32_Face_Recognition, .ai/network_st_yolo_lc_v1_256_int8.tflite_c_graph.json
# (ST YOLO LC v1, 256x256x3 uint8 input, float output, stm_ai_version 8.1.0, "activations": 278592).
GENERATED_81 = (
    ("mobilenet_v2_0.35_96_15_classes", ("mobilenet_v2", 0.35, (96, 96, 3), 15), 129_536),
    ("st_yolo_lc_v1_256", ("st_yolo_lc", 1.0, (256, 256, 3), 30), 278_592),
)


def _generated_code_check(cache: Path) -> None:
    from engine.footprint.memory_planner import plan_activations
    from engine.footprint.tflite import read_tflite

    for name, spec, published in GENERATED_81:
        ours = plan_activations(read_tflite(_build_int8(name, spec, cache)), lambda t: t.nbytes).arena_bytes
        print(
            f"STM32Cube.AI 8.1 generated code, {name} (rebuilt with Keras, random weights): ours {ours:,} B, "
            f"the code's activation buffer {published:,} B"
        )
    print()


if __name__ == "__main__":
    from docs_tables import section

    with section("footprint_vs_cubeai"):
        main()
