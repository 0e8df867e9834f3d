"""Lambda layers: read as data, recognised ones replaced, others refused unless trusted (real tf_keras/Keras 3)."""

import base64
import json
import marshal
import os
import re
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from engine.cli import main
from engine.config.schema import Quantization
from engine.models.files import trust_stored_code
from engine.models.keras_lambda import inspect_lambdas
from engine.models.keras_lambda.builtin_layers import BUILTIN_LAYERS
from engine.models.keras_lambda.bytecode import read_code_candidates
from engine.models.load import load_keras_model
from engine.quantize.tflite import quantize_tflite
from tests.conftest import ROOT
from tests.quant_helpers import ArrayCalibration, random_images
from tests.test_cli_errors import demo_config, write

# One Lambda of ST's food-101 EfficientNet LC v1 .h5 (Keras 2.8), marshalled by Python 3.8-3.10:
# `lambda x: tf.clip_by_value(x, clip_value_min=-4.0, clip_value_max=4.0)`; Python 3.11 cannot unmarshal it.
PY38_CLIP = (
    "4wEAAAAAAAAAAAAAAAEAAAAFAAAAUwAAAHMQAAAAdABqAXwAZAFkAmQDjQNTACkETmcAAAAAAAAQ"
    "wGcAAAAAAAAQQCkC2g5jbGlwX3ZhbHVlX21pbtoOY2xpcF92YWx1ZV9tYXgpAtoCdGbaDWNsaXBf"
    "YnlfdmFsdWUpAdoBeKkAcgYAAAB6cy9sb2NhbC9ob21lL2ZycTAyNTMwL216b292Ml8wNk5vdjIw"
    "MjMvZXh0ZXJuYWxfbW9kZWxfem9vL2ltYWdlX2NsYXNzaWZpY2F0aW9uL3NyYy8uL3V0aWxzLy4u"
    "L21vZGVscy9jdXN0b21fbW9kZWwucHnaCDxsYW1iZGE+egAAAPMAAAAA"
)
SETTINGS = Quantization(quantizer="TFlite_converter", quantization_input_type="uint8", quantization_output_type="float")


@pytest.fixture(autouse=True)
def untrusted():
    trust_stored_code(False)
    yield
    trust_stored_code(False)


def tf_keras_model(*lambdas, classes=4, size=16):
    """Conv → each (name, function) as a Lambda layer → GAP → Dense, built with tf_keras."""
    layers = tf_keras.layers
    inputs = tf_keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", kernel_initializer=tf_keras.initializers.RandomNormal(0, 0.8, seed=1))(
        inputs
    )
    for name, function in lambdas:
        x = layers.Lambda(function, name=name)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


RECOGNISED = [
    ("clip", lambda t: tf.clip_by_value(t, clip_value_min=-4.0, clip_value_max=4.0)),
    ("relu6", lambda t: tf.nn.relu6(t)),
    ("hard_swish", lambda t: t * tf.nn.relu6(t + 3) / 6),
    ("scale_shift", lambda t: t / 127.5 - 1),
]


def save(model, path):
    model.save(path)
    return path


def set_lambda_code(path, layer_name, code_b64):
    """Replace the stored bytecode of one Lambda in a tf_keras .h5 (as another Python would have written it)."""
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layer = next(x for x in config["config"]["layers"] if x["config"]["name"] == layer_name)
        layer["config"]["function"][0] = code_b64
        f.attrs["model_config"] = json.dumps(config)


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_python38_bytes_read_as_data():
    (code,) = read_code_candidates(base64.b64decode(PY38_CLIP))
    assert code.layout == "3.8-3.10"
    assert code.consts[1:3] == (-4.0, 4.0) and code.names == ("tf", "clip_by_value")
    with pytest.raises(ValueError, match="bad marshal data"):  # why the reader exists
        marshal.loads(base64.b64decode(PY38_CLIP))


K = tf_keras.backend
MIN_VAL = -4.0


@pytest.mark.parametrize(
    ("function", "arguments", "described"),
    [
        (lambda x: K.clip(x, 0.0, 6.0), {}, "clip(x, 0.0, 6.0)"),
        (lambda x: keras.ops.clip(x, x_min=-1.0, x_max=1.0), {}, "clip(x, -1.0, 1.0)"),
        (lambda x: tf.math.minimum(tf.math.maximum(x, 0.0), 6.0), {}, "minimum(maximum(x, 0.0), 6.0)"),
        (lambda x: tf.nn.relu6(x + 3) / 6, {}, "(relu6((x + 3)) / 6)"),
        (lambda x: x * tf.sigmoid(x), {}, "(x * sigmoid(x))"),
        (lambda x: -tf.multiply(x, 0.5), {}, "-(x * 0.5)"),
        (lambda inputs, scale: inputs[0] + inputs[1] * scale, {"scale": 0.17}, "(x[0] + (x[1] * 0.17))"),
    ],
)
def test_recognised_expressions_compute_what_the_lambda_computes(function, arguments, described):
    from engine.models.keras_lambda.known_functions import describe, evaluate, recognise
    from engine.models.keras_lambda.layers import tensor_functions

    (code,) = read_code_candidates(marshal.dumps(function.__code__))
    expression = recognise(code, arguments)
    assert describe(expression) == described
    x = tf.constant(random_images(2) * 8)
    inputs = [x, x * 0.5] if "x[0]" in described else x
    np.testing.assert_array_equal(
        evaluate(expression, inputs, tensor_functions(tf_keras)), function(inputs, **arguments)
    )


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        (lambda x: tf.clip_by_value(x, MIN_VAL, 4.0), "calls tf.clip_by_value with an argument"),
        (lambda x: tf.reshape(x, (-1, 4)), "calls tf.reshape, which is not a known tensor function"),
        (lambda x: x.shape, "reads attribute 'shape'"),
        (lambda x: x**2, "uses an operator other than + - * /"),
        (lambda x: [x, x], "uses BUILD_LIST"),
        (lambda x: tf.nn.relu6(x, name="r6"), "calls tf.nn.relu6 with arguments it does not take"),
        (lambda x: x + "a", "neither a tensor nor a number"),
    ],
)
def test_other_code_is_not_recognised_and_says_why(function, reason):
    from engine.models.keras_lambda.known_functions import NotRecognised, recognise

    (code,) = read_code_candidates(marshal.dumps(function.__code__))
    with pytest.raises(NotRecognised, match=re.escape(reason)):
        recognise(code, {})


def test_closure_is_not_recognised():
    scale = 2.0
    (code,) = read_code_candidates(marshal.dumps((lambda x: x * scale).__code__))
    from engine.models.keras_lambda.known_functions import recognise

    with pytest.raises(Exception, match="enclosing function"):
        recognise(code, {})


def test_recognised_lambdas_load_without_their_code_and_compute_the_same(tmp_path):
    native = tf_keras_model(*RECOGNISED)
    path = save(native, tmp_path / "lambdas.h5")
    loaded = load_keras_model(path)
    assert [type(layer).__name__ for layer in loaded.layers[2:6]] == ["TensorExpression"] * 4
    images = random_images(8)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), native.predict(images, verbose=0), atol=1e-6)
    with h5py.File(path) as f:  # the user's file is left as it was
        assert '"Lambda"' in f.attrs["model_config"]


def test_quantized_recognised_model_is_the_converters_output_for_the_lambda_graph(tmp_path):
    native = tf_keras_model(*RECOGNISED[:3])
    path = save(native, tmp_path / "lambdas.h5")
    calibration = ArrayCalibration(random_images(16, seed=3))
    ours = quantize_tflite(path, calibration, SETTINGS, tmp_path / "ours.tflite")
    reference = quantize_tflite(path, calibration, SETTINGS, tmp_path / "reference.tflite", model=native)
    assert ours.model_path.read_bytes() == reference.model_path.read_bytes()


def test_lambda_from_an_older_python_is_recognised(tmp_path):
    native = tf_keras_model(("se_clip", lambda t: tf.clip_by_value(t, clip_value_min=-4.0, clip_value_max=4.0)))
    path = save(native, tmp_path / "old.h5")
    set_lambda_code(path, "se_clip", PY38_CLIP)
    (item,) = inspect_lambdas(json.loads(h5py.File(path).attrs["model_config"]))
    assert (item.written_by, item.expression) == ("3.8-3.10", ["clip", ["input"], -4.0, 4.0])
    images = random_images(4) * 50
    np.testing.assert_allclose(
        load_keras_model(path).predict(images, verbose=0), native.predict(images, verbose=0), atol=1e-6
    )


def test_unrecognised_code_from_an_older_python_cannot_run_even_trusted(tmp_path, capsys):
    path = save(tf_keras_model(("odd", lambda t: tf.clip_by_value(t, -4.0, 4.0))), tmp_path / "old.h5")
    renamed = base64.b64decode(PY38_CLIP).replace(b"clip_by_value", b"clip_by_vaXue")
    set_lambda_code(path, "odd", base64.b64encode(renamed).decode())
    code, _, err = cli(capsys, "inspect", path)
    assert code == 3 and "'odd'" in err and "clip_by_vaXue" in err and "--trust-model" in err
    code, _, err = cli(capsys, "inspect", path, "--trust-model")
    assert code == 3 and "written by Python 3.8-3.10" in err and "3.11 cannot run" in err
    assert len(err.strip().splitlines()) == 1


def test_hostile_lambda_is_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    model = tf_keras_model(("payload", lambda t, target=str(marker): open(target, "w").close() or t))
    path = save(model, tmp_path / "hostile.h5")
    marker.unlink()  # building the model above ran it once
    for argv in (["inspect", path], ["inspect", path, "--json"]):
        code, out, err = cli(capsys, *argv)
        assert code == 3 and out == ""
        assert "Lambda layer 'payload'" in err and "open" in err and "not run" in err
    with pytest.raises(Exception, match="payload"):
        load_keras_model(path)
    assert not marker.exists()
    trust_stored_code(True)  # the user trusts the file: it loads the normal way (and the code runs)
    load_keras_model(path)
    assert marker.exists()


def test_unknown_lambda_refused_by_run_and_validate_loads_with_trust(tmp_path, capsys):
    model = tf_keras_model(("leaky", lambda t: tf.nn.leaky_relu(t)), classes=10)
    config = write(tmp_path, demo_config(tmp_path, general__model_path=str(save(model, tmp_path / "leaky.h5"))))
    for command in ("validate", "run"):
        code, _, err = cli(capsys, command, config)
        assert code == 3 and "Lambda layer 'leaky'" in err and "leaky_relu" in err, err
    code, out, err = cli(capsys, "run", config, "--trust-model", "--progress", "none")
    assert code == 0, err
    assert "status: ok" in out


def test_validate_refuses_without_importing_tensorflow(tmp_path):
    model = tf_keras_model(("leaky", lambda t: tf.nn.leaky_relu(t)), classes=10)
    config = write(tmp_path, demo_config(tmp_path, general__model_path=str(save(model, tmp_path / "leaky.h5"))))
    code = (
        f"import sys; from engine.cli import main; rc = main(['validate', {config!r}]); "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 3, done.stderr
    assert "Lambda layer 'leaky'" in done.stderr and "Traceback" not in done.stderr


def test_inspect_lists_lambdas(tmp_path, capsys):
    path = save(tf_keras_model(*RECOGNISED), tmp_path / "lambdas.h5")
    code, out, _ = cli(capsys, "inspect", path, "--json")
    assert code == 0
    listed = {item["name"]: item["as"] for item in json.loads(out)["lambda_layers"]}
    assert listed == {
        "clip": "clip(x, -4.0, 4.0)",
        "relu6": "relu6(x)",
        "hard_swish": "((x * relu6((x + 3))) / 6)",
        "scale_shift": "((x / 127.5) - 1)",
    }
    code, out, _ = cli(capsys, "inspect", path)
    assert "hard_swish: recognised as ((x * relu6((x + 3))) / 6)" in out


@tf_keras.utils.register_keras_serializable(package="tests")
class Doubler(tf_keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


def test_custom_layer_class_is_refused_unless_trusted(tmp_path, capsys):
    inputs = tf_keras.Input((8, 8, 3))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(tf_keras.layers.Flatten()(Doubler(name="twice")(inputs))))
    path = save(model, tmp_path / "custom.h5")
    code, _, err = cli(capsys, "inspect", path)
    assert code == 3 and "layer 'twice' is of class 'tests>Doubler'" in err
    assert cli(capsys, "inspect", path, "--trust-model")[0] == 0


def test_recognised_model_clones_rebuilds_and_optimizes(tmp_path):
    from engine.optimize.keras import optimize_for_per_tensor

    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    x = tf_keras.layers.ReLU(6.0)(x)
    x = tf_keras.layers.Lambda(lambda t: tf.clip_by_value(t, -4.0, 4.0), name="clip")(x)
    x = tf_keras.layers.Conv2D(8, 1)(x)
    x = tf_keras.layers.Lambda(lambda t: t * tf.nn.relu6(t + 3) / 6, name="hard_swish")(x)
    outputs = tf_keras.layers.Dense(3)(tf_keras.layers.GlobalAveragePooling2D()(x))
    path = save(tf_keras.Model(inputs, outputs), tmp_path / "lambdas.h5")
    loaded = load_keras_model(path)  # a tf_keras .h5 loads with tf_keras
    images = random_images(6)
    expected = loaded.predict(images, verbose=0)
    clone = tf_keras.models.clone_model(loaded)
    clone.set_weights(loaded.get_weights())
    rebuilt = tf_keras.Model.from_config(loaded.get_config())
    rebuilt.set_weights(loaded.get_weights())
    optimized, report = optimize_for_per_tensor(loaded)
    assert report.batchnorms_folded
    for model in (clone, rebuilt, optimized):
        np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)


def test_keras3_lambdas_load_in_safe_mode(tmp_path, capsys):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Lambda(lambda t: keras.ops.clip(t, -0.5, 0.5), name="clip")(x)
    x = keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="scale_shift")(x)
    native = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    path = save(native, tmp_path / "k3.keras")
    loaded = load_keras_model(path)
    assert {type(layer).__name__ for layer in loaded.layers[2:4]} == {"TensorExpression"}
    images = random_images(4)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), native.predict(images, verbose=0), atol=1e-6)
    rebuilt = keras.Model.from_config(loaded.get_config())
    rebuilt.set_weights(loaded.get_weights())
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0), native.predict(images, verbose=0), atol=1e-6)

    odd = keras.Model(inputs, keras.layers.Lambda(lambda t: t**2, name="square")(inputs))
    odd_path = save(odd, tmp_path / "odd.keras")
    code, _, err = cli(capsys, "inspect", odd_path)
    assert code == 3 and "'square'" in err
    trust_stored_code(True)
    assert type(load_keras_model(odd_path).layers[1]).__name__ == "Lambda"


def test_builtin_layer_list_matches_the_installed_keras():
    import inspect

    installed = set()
    for module, base in ((tf_keras.layers, tf_keras.layers.Layer), (keras.layers, keras.layers.Layer)):
        installed |= {obj.__name__ for obj in vars(module).values() if inspect.isclass(obj) and issubclass(obj, base)}
    not_listed = (
        installed
        - BUILTIN_LAYERS
        - {"Layer", "Wrapper", "AbstractRNNCell", "Lambda", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "TFSMLayer"}
    )
    assert not not_listed, f"Keras layers missing from BUILTIN_LAYERS: {sorted(not_listed)}"
