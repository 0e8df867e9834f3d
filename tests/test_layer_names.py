"""The footprint and the per-layer SQNR tables name a layer the same way: the model's own layer name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.models.library_internals import layer_of_node
from tests.test_cli_errors import demo_config, write


@pytest.mark.parametrize(
    ("node", "layer"),
    [
        ("model/re_lu/Relu6;model/batch_normalization/FusedBatchNormV3;model/conv2d/Conv2D1", "conv2d"),  # TFLite fused
        ("mobilenet_v2_alpha_0.35/add/add", "add"),
        ("model/block_1_depthwise/depthwise", "block_1_depthwise"),  # tf2onnx
        ("model/dense/MatMul/MatMulAddFusion", "dense"),
        ("model/dense/Tensordot/MatMul", "dense"),
        ("/features/features.0/Conv", "features.0"),  # torch.onnx
        ("tfl.quantize", "tfl.quantize"),
        ("Identity1", "Identity1"),
        ("conv/Conv2D", "conv/Conv2D"),
    ],
)
def test_layer_of_node(node: str, layer: str) -> None:
    assert layer_of_node(node) == layer


def run_summary(tmp_path: Path, capsys, config: dict) -> dict:
    code = main(["run", str(write(tmp_path, config)), "--progress", "plain"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads((Path(out.strip().splitlines()[-1]) / "run_summary.json").read_text())


def assert_one_naming(summary: dict, model_layers: set[str]) -> None:
    """Every SQNR row names a footprint layer; every weighted footprint layer is a layer of the model."""
    footprint = {layer["name"] for layer in summary["footprint"]["layers"]}
    errors = {row["layer"] for row in summary["layer_errors"]}
    assert errors and errors <= footprint, (errors - footprint, sorted(footprint))
    weighted = {layer["name"] for layer in summary["footprint"]["layers"] if layer["weight_bytes"]}
    assert weighted and weighted <= model_layers, (weighted - model_layers, sorted(model_layers))


def keras_layers(path: Path) -> set[str]:
    import tf_keras

    return {layer.name for layer in tf_keras.models.load_model(path, compile=False).layers}


@pytest.mark.parametrize("quantizer", ["TFlite_converter", "Onnx_quantizer"])
def test_demo_footprint_and_sqnr_name_the_keras_layers(tmp_path, capsys, quantizer: str) -> None:
    config = demo_config(tmp_path, quantization__quantizer=quantizer)
    summary = run_summary(tmp_path, capsys, config)
    assert_one_naming(summary, keras_layers(Path(config["general"]["model_path"])))


@pytest.mark.parametrize("quantizer", ["TFlite_converter", "Onnx_quantizer"])
def test_a_keras3_model_is_named_without_the_scope_suffix(tmp_path, capsys, quantizer: str) -> None:
    import keras

    x = inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = keras.layers.Conv2D(8, 1, name="project")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x))
    path = tmp_path / "k3.keras"
    model.save(path)
    summary = run_summary(
        tmp_path, capsys, demo_config(tmp_path, general__model_path=str(path), quantization__quantizer=quantizer)
    )
    assert_one_naming(summary, {layer.name for layer in model.layers})
    assert {"stem", "dw", "project", "head"} <= {layer["name"] for layer in summary["footprint"]["layers"]}
