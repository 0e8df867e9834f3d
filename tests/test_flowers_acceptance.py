"""Acceptance on the real tutorial model and photos: chain_eqeb as a new user would run it."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.footprint import estimate_footprint
from tests.test_cli_errors import write

pytestmark = pytest.mark.slow
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def tutorial_config(tmp_path, model, photos, **quantization) -> dict:
    return {
        "general": {"model_path": str(model)},
        "operation_mode": "chain_eqeb",
        "dataset": {"name": "flowers", "class_names": FLOWERS, "quantization_path": str(photos),
                    "quantization_split": 0.4, "test_path": str(photos)},
        "preprocessing": {"rescaling": {"scale": "1/127.5", "offset": -1},
                          "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"}, "color_mode": "rgb"},
        "quantization": {"quantizer": "TFlite_converter", "quantization_type": "PTQ", "quantization_input_type": "uint8",
                         "quantization_output_type": "float", "export_dir": "quantized_models", **quantization},
        "benchmarking": {"board": "STM32H747I-DISCO"},
        "mlflow": {"uri": str(tmp_path / "mlruns")},
        "hydra": {"run": {"dir": str(tmp_path / "run")}},
    }


def per_image_accuracy(float_model_path, tflite_path, photos) -> tuple[float, float]:
    """An independent evaluation: one image at a time, Pillow decode, tf_keras and the LiteRT interpreter."""
    import tf_keras
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    model = tf_keras.models.load_model(float_model_path, compile=False)
    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    hits_float = hits_int8 = total = 0
    for label, name in enumerate(FLOWERS):
        for path in sorted((photos / name).iterdir()):
            image = Image.open(path).convert("RGB").resize((128, 128), Image.Resampling.NEAREST)
            x = np.asarray(image, np.float32)[None] / 127.5 - 1
            hits_float += int(np.argmax(model(x, training=False)) == label)
            interpreter.set_tensor(inp["index"], np.clip(np.round(x / scale + zero), 0, 255).astype(np.uint8))
            interpreter.invoke()
            hits_int8 += int(np.argmax(interpreter.get_tensor(out["index"])) == label)
            total += 1
    return 100 * hits_float / total, 100 * hits_int8 / total


def test_chain_eqeb_on_the_tutorial_model(tmp_path, capsys, flowers_h5, flower_photos, flowers_st_tflite):
    assert main(["run", write(tmp_path, tutorial_config(tmp_path, flowers_h5, flower_photos)), "--progress", "none"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "run_summary.json").read_text())
    accuracy, footprint = summary["accuracy"], summary["footprint"]
    print("accuracy", accuracy["float"], accuracy["quantized"], "agreement", accuracy["agreement"])
    print("footprint", footprint["weights_flash_kib"], footprint["activation_ram_kib"])
    assert accuracy["images"] == 300
    assert accuracy["agreement"] >= 98.5

    float_acc, int8_acc = per_image_accuracy(flowers_h5, summary["quantized_model"], flower_photos)
    assert abs(accuracy["float"] - float_acc) <= 0.5
    assert abs(accuracy["quantized"] - int8_acc) <= 0.5

    st = estimate_footprint(flowers_st_tflite)
    assert abs(st.weights_flash_kib - 406.86) / 406.86 <= 0.01
    assert abs(st.activation_ram_kib - 237.32) / 237.32 <= 0.05
    assert abs(footprint["weights_flash_kib"] - st.weights_flash_kib) / st.weights_flash_kib <= 0.02
    assert abs(footprint["activation_ram_kib"] - st.activation_ram_kib) / st.activation_ram_kib <= 0.02
    assert footprint["board_fit"]["weights_fit"] and footprint["board_fit"]["activations_fit"]
