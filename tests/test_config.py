"""The config schema: reference YAML loads unchanged, errors name the key and the line."""

import os

import pytest

from engine.common.errors import ConfigError
from engine.config.expressions import ExpressionError, evaluate
from engine.config.schema import (
    check,
    choices,
    dump_config,
    load_config,
    load_config_text,
    to_data,
    validate_field,
)
from tests.conftest import ROOT

TUTORIAL = """\
general:
   model_path: ../pretrained_models/mobilenet_v2_0.35_128_fft.h5
operation_mode: quantization
dataset:
  name: flowers
  class_names: [daisy, dandelion, roses, sunflowers, tulips]
  quantization_path: ../datasets/flower_photos
  quantization_split: 0.4
preprocessing:
   rescaling:
      scale: 1/127.5
      offset: -1
   resizing:
      aspect_ratio: fit
      interpolation: nearest
   color_mode: rgb
quantization:
   quantizer: TFlite_converter
   quantization_type: PTQ
   quantization_input_type: uint8
   quantization_output_type: float
   export_dir: quantized_models
mlflow:
   uri: ./experiments_outputs/mlruns
hydra:
   run:
      dir: ./experiments_outputs/${now:%Y_%m_%d_%H_%M_%S}
"""


def errors_of(text: str, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "cfg.yaml", overrides)
    return info.value.problems


def test_tutorial_config_loads_unchanged():
    config = load_config_text(TUTORIAL)
    assert config.preprocessing.rescaling.scale == pytest.approx(1 / 127.5)
    assert config.preprocessing.rescaling.offset == -1
    assert config.quantization.granularity == "per_channel"
    assert config.dataset.quantization_split == 0.4
    assert config.run_dir().parent.name == "experiments_outputs"


def test_dump_round_trips():
    config = load_config_text(TUTORIAL)
    assert load_config_text(dump_config(config)) == config


@pytest.mark.parametrize("path", sorted((ROOT / "sample_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_sample_configs_load(path):
    config = load_config(path)
    assert to_data(load_config_text(dump_config(config))) == to_data(config)


def test_reference_zoo_config_loads(assets):
    config = load_config(assets / "models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft_config.yaml")
    assert config.operation_mode == "chain_tbqeb"
    assert config.tools.stm32ai.on_cloud is True


def test_unknown_key_suggests_near_miss():
    text = TUTORIAL.replace("   export_dir: quantized_models", "   granulrity: per_tensor")
    assert errors_of(text) == ["cfg.yaml:22: quantization.granulrity: unknown key; did you mean granularity?"]


def test_every_error_reported_with_line():
    text = TUTORIAL.replace("uint8", "uint9").replace("0.4", "0").replace("color_mode: rgb", "color_mode: rbg")
    problems = errors_of(text)
    assert len(problems) == 3
    assert "cfg.yaml:8: dataset.quantization_split: Input should be greater than 0" in problems[0]
    assert problems[1].startswith("cfg.yaml:16: preprocessing.color_mode: 'rbg' is not allowed; allowed values:")
    assert "'grayscale', 'rgb', 'rgba'" in problems[1]
    assert problems[2].startswith("cfg.yaml:20: quantization.quantization_input_type: 'uint9' is not allowed")


@pytest.mark.parametrize("split", ["0", "-0.5", "1.5"])
def test_quantization_split_range(split):
    (problem,) = errors_of(TUTORIAL.replace("quantization_split: 0.4", f"quantization_split: {split}"))
    assert "dataset.quantization_split" in problem


def test_split_of_one_is_allowed():
    assert load_config_text(TUTORIAL.replace("0.4", "1.0")).dataset.quantization_split == 1.0


def test_wrong_type():
    (problem,) = errors_of(TUTORIAL.replace("   export_dir: quantized_models", "   optimize: maybe"))
    assert problem.startswith("cfg.yaml:22: quantization.optimize: Input should be a valid boolean")


def test_expression_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = TUTORIAL.replace("1/127.5", f"__import__('os').system('touch {marker}')")
    (problem,) = errors_of(text)
    assert problem.startswith("cfg.yaml:11: preprocessing.rescaling.scale: not a number or arithmetic expression")
    assert not marker.exists()


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("STQ_DATA", "/data/flowers")
    config = load_config_text(TUTORIAL.replace("../datasets/flower_photos", "${STQ_DATA}"))
    assert config.dataset.quantization_path == "/data/flowers"
    monkeypatch.delenv("STQ_DATA")
    (problem,) = errors_of(TUTORIAL.replace("../datasets/flower_photos", "${STQ_DATA}/x"))
    assert problem == "cfg.yaml:7: dataset.quantization_path: environment variable STQ_DATA is not set"


def test_yaml_syntax_error_names_line():
    (problem,) = errors_of(TUTORIAL.replace("  name: flowers", "  name: [flowers"))
    assert problem.startswith("cfg.yaml:") and "YAML syntax error" in problem


def test_overrides():
    config = load_config_text(
        TUTORIAL, overrides=["quantization.granularity=per_tensor", "dataset.quantization_split=0.25"]
    )
    assert config.quantization.granularity == "per_tensor"
    assert config.dataset.quantization_split == 0.25
    (problem,) = errors_of(TUTORIAL, ["quantization.granulrity=per_tensor"])
    assert "quantization.granulrity: unknown key; did you mean granularity?" in problem


def test_v4_dialect_renames():
    text = TUTORIAL.replace("general:\n   model_path:", "model:\n   model_path:").replace(
        "name: flowers", "dataset_name: flowers"
    )
    config = load_config_text(text)
    assert config.general.model_path.endswith("mobilenet_v2_0.35_128_fft.h5")
    assert config.dataset.name == "flowers"


def test_reference_strings_and_case():
    text = TUTORIAL.replace("TFlite_converter", "tflite_converter").replace("PTQ", "ptq")
    config = load_config_text(text + "\nevaluation:\n  gen_npy_input: 'True'\n")
    assert config.quantization.quantizer == "TFlite_converter"
    assert config.quantization.quantization_type == "PTQ"
    assert config.evaluation.gen_npy_input is True


def test_mode_requirements():
    problems = [
        str(p)
        for p in check(
            {
                "operation_mode": "chain_eqe",
                "general": {"model_path": "m.onnx"},
                "preprocessing": {"rescaling": {"scale": 1, "offset": 0}},
                "quantization": {"quantizer": "TFlite_converter"},
            }
        )
    ]
    assert any("quantization.quantizer: TFlite_converter cannot quantize an .onnx model" in p for p in problems)
    assert any("dataset.test_path: operation_mode chain_eqe needs one of test_path" in p for p in problems)


def test_field_helpers_for_the_wizard():
    assert "lanczos5" in choices("preprocessing.resizing.interpolation")
    assert choices("general.model_path") is None
    assert validate_field("preprocessing.rescaling.scale", "1/127.5") is None
    assert "less than or equal to 1" in validate_field("dataset.quantization_split", "1.5")
    assert validate_field("quantization.granulrity", "x") == "unknown key"


def test_expressions():
    assert evaluate("1/127.5") == pytest.approx(0.00784313725)
    assert evaluate("(128, 128, 3)") == (128, 128, 3)
    assert evaluate("-2**3") == -8
    for bad in ["os.system('id')", "2**1000", "1/0", "[x for x in ()]", "'a'"]:
        with pytest.raises(ExpressionError):
            evaluate(bad)


def test_run_dir_uses_now(tmp_path):
    config = load_config_text(TUTORIAL.replace("./experiments_outputs/${now", f"{tmp_path}/runs/${{now"))
    assert config.run_dir().parent == tmp_path / "runs"
    assert os.path.basename(config.run_dir()).count("_") == 5


def test_benchmarking_a_keras_model_points_to_chain_qb():
    problems = [str(p) for p in check({"operation_mode": "benchmarking", "general": {"model_path": "m.h5"}})]
    assert problems == [
        "<config>: general.model_path: benchmarking estimates the footprint of a .tflite or .onnx "
        "model; quantize the Keras model first (chain_qb does both)"
    ]
