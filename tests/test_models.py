"""Model loading and description: real files, clear errors, no TensorFlow for `describe_model`."""

import json
import os
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from engine.common.errors import InputError
from engine.models.info import describe_model
from engine.models.load import load_keras_model
from tests.quant_helpers import save_tiny_keras_model


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    return save_tiny_keras_model(tmp_path_factory.mktemp("models") / "tiny.keras")


def make_onnx(path, opset=13, nhwc=False):
    """A small real ONNX classifier: [Transpose] Conv Relu GlobalAveragePool Flatten Gemm."""
    import numpy as np

    rng = np.random.default_rng(0)
    shape = [None, 16, 16, 3] if nhwc else [None, 3, 16, 16]
    nodes, first = [], "x"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
        first = "x_nchw"
    nodes += [
        helper.make_node("Conv", [first, "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"]),
    ]
    inits = [
        onnx.numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype("float32"), "w"),
        onnx.numpy_helper.from_array(rng.normal(0, 0.1, 8).astype("float32"), "b"),
        onnx.numpy_helper.from_array(rng.normal(0, 0.5, (8, 5)).astype("float32"), "fw"),
        onnx.numpy_helper.from_array(np.zeros(5, "float32"), "fb"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_load_keras3_model(tiny_keras, tmp_path):
    model = load_keras_model(tiny_keras)
    assert tuple(model.input_shape) == (None, 16, 16, 3)
    model.save(tmp_path / "keras3.h5")  # HDF5 written by Keras 3: loads with Keras 3
    assert type(load_keras_model(tmp_path / "keras3.h5")).__module__.startswith("keras")


@pytest.fixture(scope="module")
def fresh_process(tiny_keras, tmp_path_factory) -> list[dict]:
    """One fresh process (TF_USE_LEGACY_KERAS=1): describe a Keras and an ONNX model, then save a tf_keras model as
    .h5 and load it; what it had imported after each (and the loaded model's module)."""
    folder = tmp_path_factory.mktemp("fresh")
    onnx_path, h5 = make_onnx(folder / "m.onnx"), folder / "k2.h5"
    code = (
        "import json, sys; from engine.models.info import describe_model; "
        f"describe_model({str(tiny_keras)!r}); describe_model({str(onnx_path)!r}); "
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules})); "
        "import tf_keras; from engine.models.load import load_keras_model; "
        "m = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)]); "
        f"m.save({str(h5)!r}); "
        f"print(json.dumps({{'module': type(load_keras_model({str(h5)!r})).__module__, "
        "'keras3': 'keras.src' in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_keras2_h5_loads_with_tf_keras_without_importing_keras3(fresh_process):
    loaded = fresh_process[1]
    assert loaded["module"].startswith("tf_keras") and not loaded["keras3"], loaded  # keras3: Keras 3 was imported


@pytest.mark.slow
def test_zoo_h5_falls_back_to_tf_keras(flowers_h5):
    model = load_keras_model(flowers_h5)
    assert type(model).__module__.startswith("tf_keras")
    assert tuple(model.output_shape) == (None, 5)


@pytest.mark.parametrize("name", ["model.h5", "model.keras", "model.onnx", "model.tflite"])
def test_text_file_named_as_model_is_a_clear_input_error(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not a model\n")
    with pytest.raises(InputError, match="not a"):
        describe_model(path)
    if name.endswith((".h5", ".keras")):
        with pytest.raises(InputError, match=r"model\.(h5|keras): not a Keras model"):
            load_keras_model(path)


def test_missing_model_is_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_keras_model(tmp_path / "absent.h5")
    with pytest.raises(InputError, match="not found"):
        describe_model(tmp_path / "absent.onnx")


def test_describe_keras_files(tiny_keras, tmp_path):
    info = describe_model(tiny_keras)
    assert (info.format, info.input_name, info.input_shape, info.layout) == (
        "keras",
        "image",
        [None, 16, 16, 3],
        "NHWC",
    )
    assert (info.height, info.width, info.channels, info.output_width, info.quantized) == (16, 16, 3, 4, False)
    h5 = tmp_path / "tiny.h5"
    load_keras_model(tiny_keras).save(h5)
    assert describe_model(h5).to_dict() | {"path": "", "format": ""} == info.to_dict() | {"path": "", "format": ""}


def test_describe_onnx_nchw_and_nhwc(tmp_path):
    info = describe_model(make_onnx(tmp_path / "nchw.onnx"))
    assert (info.layout, info.input_shape, info.channels, info.output_width, info.opset) == (
        "NCHW",
        [None, 3, 16, 16],
        3,
        5,
        13,
    )
    info = describe_model(make_onnx(tmp_path / "nhwc.onnx", nhwc=True))
    assert (info.layout, info.height, info.channels, info.quantized) == ("NHWC", 16, 3, False)


def test_describe_does_not_import_tensorflow(fresh_process):
    assert fresh_process[0] == {"tensorflow": False, "keras": False}


@pytest.mark.slow
def test_describe_real_assets(flowers_h5, flowers_st_tflite, flowers_onnx):
    h5 = describe_model(flowers_h5)
    assert (h5.input_shape, h5.output_width, h5.quantized) == ([None, 128, 128, 3], 5, False)
    tfl = describe_model(flowers_st_tflite)
    assert (tfl.input_dtype, tfl.height, tfl.output_width, tfl.quantized) == ("uint8", 128, 5, True)
    onx = describe_model(flowers_onnx)
    assert (onx.layout, onx.input_name, onx.width, onx.opset) == ("NCHW", "input_1", 128, 13)
