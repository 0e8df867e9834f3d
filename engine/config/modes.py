"""Operation modes and what each needs beyond the schema (the reference's `parse_top_level` rules).

The reference (`common/utils/cfg_utils.py:parse_top_level` and the image-classification `parse_config.py`)
checks each section only for the modes that use it: `preprocessing` for every mode but benchmarking,
`preprocessing.rescaling` for every mode but deployment, `quantization` for the quantization group, a
test/validation/training folder for the evaluation group, a model file for all of them. stquant applies
those rules to the modes it runs; a mode it does not run (training, prediction, deployment, chains with
them) is reported as such by `validate` and `run`, never hidden behind a rule of that mode. A chain that
quantizes may also be evaluated on the quantization images left out of calibration (`evaluation_source`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the schema imports this module; the annotations only name its Config
    from engine.config.schema import Config

MODES = (
    "training",
    "evaluation",
    "prediction",
    "deployment",
    "quantization",
    "benchmarking",
    "chain_tqeb",
    "chain_tqe",
    "chain_eqe",
    "chain_qb",
    "chain_eqeb",
    "chain_qd",
    "chain_tbqeb",
)
RUNNABLE_MODES = ("quantization", "evaluation", "benchmarking", "chain_eqe", "chain_qb", "chain_eqeb")
QUANTIZATION_MODES = {"quantization", "chain_tqeb", "chain_tqe", "chain_eqe", "chain_qb", "chain_eqeb", "chain_qd"}
EVALUATION_MODES = {"evaluation", "chain_tqeb", "chain_tqe", "chain_eqe", "chain_eqeb"}
BENCHMARK_MODES = {"benchmarking", "chain_tqeb", "chain_qb", "chain_eqeb"}

EVALUATION_KEYS = ("test_path", "validation_path", "training_path")  # the first one given is evaluated on
HELD_OUT = "quantization_split"  # evaluation_source: the quantization images not used for calibration

Found = list[tuple[str, str]]


def evaluation_source(mode: str, given: Callable[[str], Any]) -> str | None:
    """The dataset key an evaluating mode takes its images from (`given("test_path")`: the dataset's value), one
    rule for the config check and every command (`engine.run.preflight.evaluation_set`): the first of
    `EVALUATION_KEYS` given (training_path: its validation_split tail), else `HELD_OUT` when the mode quantizes
    and its quantization_split (below 1) leaves quantization_path images out of calibration; None when none."""
    key = next((key for key in EVALUATION_KEYS if given(key)), None)
    if key is None and mode in QUANTIZATION_MODES and given("quantization_path"):
        split = given("quantization_split")
        return HELD_OUT if split is not None and split < 1 else None
    return key


def mode_requirements(config: Config) -> Found:
    """(key, message) for each thing the config's operation mode needs and lacks; none for modes not run."""
    mode = config.operation_mode
    if mode not in RUNNABLE_MODES:
        return []
    return _model_requirements(config, mode) + _section_requirements(config, mode)


def _model_requirements(config: Config, mode: str) -> Found:
    model_path = config.general.model_path
    if not model_path:
        return [
            ("model.model_path" if config.model is not None else "general.model_path", _missing_model(config, mode))
        ]
    if re.match(r"https?://", model_path):
        return [("general.model_path", "URLs are not supported; download the model and give its path")]
    suffix = Path(model_path).suffix.lower()
    name = Path(model_path).name
    if mode in QUANTIZATION_MODES and suffix not in (".h5", ".keras", ".onnx"):
        return [("general.model_path", f"operation_mode {mode} needs a .h5, .keras or .onnx model, got {name!r}")]
    if suffix not in (".h5", ".keras", ".onnx", ".tflite"):
        return [("general.model_path", f"expected a .h5, .keras, .onnx or .tflite model, got {name!r}")]
    if mode == "benchmarking" and suffix in (".h5", ".keras"):
        return [
            (
                "general.model_path",
                "benchmarking estimates the footprint of a .tflite or .onnx model; "
                "quantize the Keras model first (chain_qb does both)",
            )
        ]
    if mode in QUANTIZATION_MODES and suffix == ".onnx" and _quantizer(config) == "TFlite_converter":
        return [("quantization.quantizer", "TFlite_converter cannot quantize an .onnx model; use Onnx_quantizer")]
    return []


def _missing_model(config: Config, mode: str) -> str:
    name = getattr(config.model, "model_name", None) if config.model is not None else None
    if name:
        return (
            f"required for operation_mode {mode}: model.model_name {name!r} names a model the reference "
            "builds (and downloads weights for); stquant needs the model file (model.model_path)"
        )
    return f"required for operation_mode {mode}"


def _quantizer(config: Config) -> str | None:
    return config.quantization.quantizer if config.quantization is not None else None


def _section_requirements(config: Config, mode: str) -> Found:
    found: Found = []
    if mode in QUANTIZATION_MODES and config.quantization is None:
        found.append(("quantization", f"section required for operation_mode {mode}"))
    if mode != "benchmarking" and config.preprocessing is None:
        found.append(("preprocessing", f"section required for operation_mode {mode}"))
    if config.preprocessing is not None and config.preprocessing.rescaling is None:
        found.append(("preprocessing.rescaling", f"required for operation_mode {mode} (scale and offset)"))
    ds = config.dataset
    if mode in EVALUATION_MODES and evaluation_source(mode, lambda key: getattr(ds, key)) is None:
        found.append(
            (
                "dataset.test_path",  # the field to fill first: the one the wizard points at
                f"operation_mode {mode} needs one of test_path, validation_path, training_path",
            )
        )
    return found
