"""Acceptance on the real tutorial model and photos: chain_eqeb as a new user would run it."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.footprint import estimate_footprint
from tests.conftest import _asset
from tests.test_cli_errors import write

pytestmark = pytest.mark.slow
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
H5 = ("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft.h5")


def tutorial_config(tmp_path, model, photos, **quantization) -> dict:
    return {
        "general": {"model_path": str(model)},
        "operation_mode": "chain_eqeb",
        "dataset": {
            "name": "flowers",
            "class_names": FLOWERS,
            "quantization_path": str(photos),
            "quantization_split": 0.4,
            "test_path": str(photos),
        },
        "preprocessing": {
            "rescaling": {"scale": "1/127.5", "offset": -1},
            "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
            "color_mode": "rgb",
        },
        "quantization": {
            "quantizer": "TFlite_converter",
            "quantization_type": "PTQ",
            "quantization_input_type": "uint8",
            "quantization_output_type": "float",
            "export_dir": "quantized_models",
            **quantization,
        },
        "benchmarking": {"board": "STM32H747I-DISCO"},
        "mlflow": {"uri": str(tmp_path / "mlruns")},
        "hydra": {"run": {"dir": str(tmp_path / "run")}},
    }


def photo_predictions(float_model_path, tflite_path, photos) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An independent evaluation: Pillow decode, tf_keras (batches of 50) and the LiteRT interpreter (one image at a
    time). The float and the int8 top-1 class of every photo, and its label."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from tests.shared_models import tf_keras_model

    model = tf_keras_model(float_model_path)
    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    images, labels = [], []
    for label, name in enumerate(FLOWERS):
        for path in sorted((photos / name).iterdir()):
            image = Image.open(path).convert("RGB").resize((128, 128), Image.Resampling.NEAREST)
            images.append(np.asarray(image, np.float32) / 127.5 - 1)
            labels.append(label)
    floats = [np.argmax(model(np.stack(images[i : i + 50]), training=False), 1) for i in range(0, len(images), 50)]
    int8 = []
    for x in images:
        interpreter.set_tensor(inp["index"], np.clip(np.round(x[None] / scale + zero), 0, 255).astype(np.uint8))
        interpreter.invoke()
        int8.append(int(np.argmax(interpreter.get_tensor(out["index"]))))
    return np.concatenate(floats), np.array(int8), np.array(labels)


def per_image_accuracy(float_model_path, tflite_path, photos) -> tuple[float, float]:
    """Float and int8 accuracy of the independent evaluation, percent."""
    floats, int8, labels = photo_predictions(float_model_path, tflite_path, photos)
    return 100 * float(np.mean(floats == labels)), 100 * float(np.mean(int8 == labels))


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> dict:
    """One real `stquant run` of chain_eqeb on the tutorial model, shared by the tests below: its run_summary.json."""
    tmp_path = tmp_path_factory.mktemp("tutorial")
    config = tutorial_config(tmp_path, _asset(*H5), _asset("datasets", "flower_photos"))
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))  # an empty statistics cache, never the user's
        code = main(["run", write(tmp_path, config), "--progress", "none"])
    assert code == 0
    summary = json.loads((Path(out.getvalue().strip().splitlines()[-1]) / "run_summary.json").read_text())
    accuracy, footprint = summary["accuracy"], summary["footprint"]
    print("accuracy", accuracy["float"], accuracy["quantized"], "agreement", accuracy["agreement"])
    print("footprint", footprint["weights_flash_kib"], footprint["activation_ram_kib"])
    return summary


def test_chain_eqeb_evaluates_every_photo_and_agrees(tutorial_run):
    assert tutorial_run["accuracy"]["images"] == 300
    assert tutorial_run["accuracy"]["agreement"] >= 98.5


def test_accuracies_equal_an_independent_evaluation(tutorial_run, flowers_h5, flower_photos):
    accuracy = tutorial_run["accuracy"]
    float_acc, int8_acc = per_image_accuracy(flowers_h5, tutorial_run["quantized_model"], flower_photos)
    assert abs(accuracy["float"] - float_acc) <= 0.5
    assert abs(accuracy["quantized"] - int8_acc) <= 0.5


def test_footprint_of_st_int8_model_matches_its_published_figures(flowers_st_tflite):
    st = estimate_footprint(flowers_st_tflite)
    assert abs(st.weights_flash_kib - 406.86) / 406.86 <= 0.01
    assert abs(st.activation_ram_kib - 225.17) / 225.17 <= 0.02  # STM32Cube.AI 8.1, whose rules the planner follows


def test_footprint_equals_the_st_int8_models_and_fits_the_board(tutorial_run, flowers_st_tflite):
    footprint, st = tutorial_run["footprint"], estimate_footprint(flowers_st_tflite)
    assert abs(footprint["weights_flash_kib"] - st.weights_flash_kib) / st.weights_flash_kib <= 0.02
    assert abs(footprint["activation_ram_kib"] - st.activation_ram_kib) / st.activation_ram_kib <= 0.02
    assert footprint["board_fit"]["weights_fit"] and footprint["board_fit"]["activations_fit"]
