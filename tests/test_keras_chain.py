"""Keras 3 (.keras, .h5) and tf_keras (.h5) models through the whole chain, both quantizers, via `stquant run`.

The models are built and trained here: a 24x32 grayscale input (non-square, one channel), a depthwise
convolution, a residual add and a one-unit sigmoid output (two classes), with Keras' automatic layer
names. The data are PNG images made here: a bright horizontal bar or a bright vertical bar on noise.
"""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from engine.cli import main

HEIGHT, WIDTH = 24, 32
CLASSES = ["horizontal", "vertical"]
IMAGES = 40
MODELS = ["keras3.keras", "keras3.h5", "tf_keras.h5"]
QUANTIZERS = ["TFlite_converter", "Onnx_quantizer"]
VARIANTS = {  # name: (operation_mode, quantization settings)
    "plain": ("chain_eqe", {"granularity": "per_channel"}),
    "optimize": ("chain_eqeb", {"granularity": "per_tensor", "optimize": True, "bias_correction": True}),
    "bias_correction": ("chain_eqe", {"granularity": "per_channel", "bias_correction": True}),
}
MIN_AGREEMENT = 90.0


def bar_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (count, H, W) images alternating between the two classes, and their labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (count, HEIGHT, WIDTH)).astype(np.uint8)
    labels = np.arange(count) % 2
    for image, label in zip(images, labels):
        if label == 0:
            row = rng.integers(2, HEIGHT - 6)
            image[row : row + 4, :] = rng.integers(180, 256, (4, WIDTH))
        else:
            column = rng.integers(2, WIDTH - 7)
            image[:, column : column + 5] = rng.integers(180, 256, (HEIGHT, 5))
    return images, labels


def trained_model(keras_name: str, images: np.ndarray, labels: np.ndarray, weights: list | None = None):
    """The model built with `keras_name` (keras or tf_keras), trained on the images; or given the `weights` of the
    same model trained with the other Keras (same layers, same order: no second training)."""
    keras = importlib.import_module(keras_name)
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((HEIGHT, WIDTH, 1))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    stem = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same")(stem)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(8, 1)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Add()([stem, x])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    x = images[..., None].astype(np.float32) / 127.5 - 1.0
    if weights is None:
        model.fit(x, labels, epochs=40, batch_size=8, verbose=0)
    else:
        model.set_weights(weights)
    assert model.evaluate(x, labels, verbose=0)[1] == 1.0
    return model


@pytest.fixture(scope="module")
def chain_assets(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """The folder of the models and images, and each model's layer classes by layer name."""
    root = tmp_path_factory.mktemp("keras_chain")
    images, labels = bar_images(IMAGES)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / "data" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / f"{i:03d}.png")
    keras3 = trained_model("keras", images, labels)
    keras3.save(root / "keras3.keras")
    keras3.save(root / "keras3.h5")
    keras2 = trained_model("tf_keras", images, labels, keras3.get_weights())
    keras2.save(root / "tf_keras.h5")
    names = {
        model: {layer.name: type(layer).__name__ for layer in built.layers}
        for model, built in [("keras3.keras", keras3), ("keras3.h5", keras3), ("tf_keras.h5", keras2)]
    }
    return root, names


def run_chain(root: Path, out: Path, model: str, quantizer: str, mode: str, settings: dict) -> tuple[int, dict]:
    config = {
        "general": {"model_path": str(root / model)},
        "operation_mode": mode,
        "dataset": {
            "name": "bars",
            "class_names": CLASSES,
            "quantization_path": str(root / "data"),
            "test_path": str(root / "data"),
        },
        "preprocessing": {
            "rescaling": {"scale": "1/127.5", "offset": -1},
            "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
            "color_mode": "grayscale",
        },
        "quantization": {
            "quantizer": quantizer,
            "quantization_type": "PTQ",
            "quantization_input_type": "uint8",
            "quantization_output_type": "float",
            "export_dir": "quantized_models",
            **settings,
        },
        "mlflow": {"uri": str(out / "mlruns")},
    }
    out.mkdir(parents=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["run", str(path), "--output-dir", str(out / "run"), "--progress", "none"])
    summary_path = out / "run" / "run_summary.json"
    return code, json.loads(summary_path.read_text()) if summary_path.exists() else {}


def _cases():
    for model in MODELS:
        for quantizer in QUANTIZERS:
            for variant in VARIANTS:
                fast = model == "keras3.keras" or variant == "plain"
                yield pytest.param(
                    model,
                    quantizer,
                    variant,
                    marks=() if fast else pytest.mark.slow,
                    id=f"{model}-{quantizer}-{variant}",
                )


@pytest.mark.parametrize(("model", "quantizer", "variant"), list(_cases()))
def test_whole_chain(chain_assets, tmp_path, capsys, model, quantizer, variant):
    root, names = chain_assets
    mode, settings = VARIANTS[variant]
    code, summary = run_chain(root, tmp_path / "out", model, quantizer, mode, settings)
    err = capsys.readouterr().err
    assert code == 0, err
    accuracy = summary["accuracy"]
    print(
        f"{model} {quantizer} {variant}: float {accuracy['float']} %, quantized {accuracy['quantized']} %, "
        f"agreement {accuracy['agreement']} %"
    )
    assert accuracy["images"] == IMAGES and accuracy["float"] == 100.0
    assert accuracy["agreement"] >= MIN_AGREEMENT and accuracy["quantized"] >= MIN_AGREEMENT
    rows = summary["layer_errors"]
    assert len(rows) >= 4, rows
    add = next(row for row in rows if row["op"] in ("ADD", "Add"))
    assert names[model].get(add["layer"]) == "Add"  # the Keras layer's own name, not TensorFlow's scope for it
    if quantizer == "TFlite_converter":
        assert {row["op"] for row in rows} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"}
        assert {row["layer"] for row in rows} <= set(names[model])
    optimization = summary["optimization"]
    if variant == "optimize":
        assert len(optimization["batchnorms_folded"]) == 3 and optimization["pairs_equalized"]
        assert len(optimization["biases_corrected"]) == 4
    elif variant == "bias_correction":
        assert len(optimization["biases_corrected"]) == 4 and not optimization["batchnorms_folded"]
    else:
        assert optimization is None
