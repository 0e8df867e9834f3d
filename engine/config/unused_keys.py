"""Keys stquant accepts (model zoo compatibility) but does not act on, for one warning line each.

A key is reported only when the config gives it a value other than its default, so a model zoo file
that spells out every default stays quiet. (The v4 dialect's ignored keys, such as `model.model_name`,
are noted by `engine.config.dialects` as `Config.notes`.) Some keys are only ignored in some modes (the ONNX
options with the TFLite converter, a dataset folder the mode does not read, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from engine.config.fields import default_of
from engine.config.schema import BENCHMARK_MODES, EVALUATION_MODES, QUANTIZATION_MODES, Config

TRAINING_ONLY = "used for training, which stquant does not do"
NO_NPY = "stquant writes no .npy reference tensors"
IGNORED = {
    "general.display_figures": "stquant never opens figure windows; confusion matrices are PNGs in the run folder",
    "general.global_seed": "stquant's only randomness (shuffle, random calibration) is seeded by dataset.seed",
    "general.gpu_memory_limit": "stquant runs on the CPU",
    "general.num_threads_tflite": "the TFLite interpreter uses every core",
    "general.logs_dir": "the run log is stquant.log in the run folder",
    "general.saved_models_dir": TRAINING_ONLY,
    "general.deterministic_ops": TRAINING_ONLY,
    "general.model_type": "the model is described by the file of general.model_path",
    "dataset.classes_file_path": "class names come from dataset.class_names or the class folders",
    "dataset.check_image_files": "unreadable images are always skipped with a warning naming them",
    "evaluation.gen_npy_input": NO_NPY,
    "evaluation.gen_npy_output": NO_NPY,
    "evaluation.npy_in_name": NO_NPY,
    "evaluation.npy_out_name": NO_NPY,
    "evaluation.target": "stquant evaluates on this computer (host) only",
}
ONNX_ONLY = ("quantization.target_opset", "quantization.extra_options")
OTHER_MODES = ("training", "prediction", "deployment", "data_augmentation", "custom_data_augmentation")


def unused_key_warnings(config: Config) -> list[str]:
    """One line per key set to a non-default value that this run will not use."""
    found = [(key, reason) for key, reason in IGNORED.items() if _is_set(config, key)]
    found += [
        (f"tools.{key}", "stquant estimates the footprint itself and never calls STM32Cube.AI / STEdgeAI")
        for key in _leaves(config.tools)
    ]
    found += [
        (section, f"section for operation modes stquant does not run ({', '.join(OTHER_MODES[:3])}...)")
        for section in OTHER_MODES
        if getattr(config, section)
    ]
    found += [(f"hydra.{key}", "only hydra.run.dir is used") for key in (config.hydra.model_extra or {})]
    found += [(f"hydra.run.{key}", "only hydra.run.dir is used") for key in (config.hydra.run.model_extra or {})]
    found += _mode_specific(config)
    return [f"{key}: set but not used by stquant ({reason})" for key, reason in found]


def _mode_specific(config: Config) -> list[tuple[str, str]]:
    mode = config.operation_mode
    quantizes, evaluates = mode in QUANTIZATION_MODES, mode in EVALUATION_MODES
    found = []
    if config.quantization is not None:
        if not quantizes:
            found.append(("quantization", f"operation_mode {mode} does not quantize"))
        elif config.quantization.quantizer == "TFlite_converter":
            found += [(key, "used by Onnx_quantizer only") for key in ONNX_ONLY if _is_set(config, key)]
    if config.preprocessing is not None and not (quantizes or evaluates):
        found.append(("preprocessing", f"operation_mode {mode} reads no images"))
    if config.benchmarking.board and not (quantizes or mode in BENCHMARK_MODES):
        found.append(("benchmarking.board", f"operation_mode {mode} estimates no footprint"))
    used = used_dataset_keys(config)
    ds = config.dataset
    for key in ("training_path", "validation_path", "test_path", "quantization_path", "prediction_path"):
        if getattr(ds, key) and key not in used:
            found.append((f"dataset.{key}", f"operation_mode {mode} does not read this folder"))
    if _is_set(config, "dataset.quantization_split") and not (quantizes and (ds.quantization_path or ds.training_path)):
        found.append(("dataset.quantization_split", "no calibration images are read"))
    if _is_set(config, "dataset.validation_split") and not (evaluates and not (ds.test_path or ds.validation_path)):
        found.append(("dataset.validation_split", "the evaluation set is not split from training_path"))
    return found


def used_dataset_keys(config: Config) -> set[str]:
    """The dataset folders the operation mode reads: calibration, then evaluation (the reference's order)."""
    return dataset_keys_read(config.operation_mode, lambda key: getattr(config.dataset, key))


def dataset_keys_read(mode: str, given: Callable[[str], Any]) -> set[str]:
    """`used_dataset_keys` from the mode and the dataset's values (`given("test_path")`), e.g. of an editor's draft."""
    used = set()
    if mode in QUANTIZATION_MODES:
        used.add("quantization_path" if given("quantization_path") else "training_path")
    if mode in EVALUATION_MODES:
        used.add(next((key for key in ("test_path", "validation_path") if given(key)), "training_path"))
    return {key for key in used if given(key)}


def _is_set(config: Config, key: str) -> bool:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part, None)
        if node is None:
            return False
    return bool(node != default_of(key))


def _leaves(section: BaseModel | None, prefix: str = "") -> list[str]:
    """Dotted names of the keys under a section that hold a value."""
    if section is None:
        return []
    keys = []
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            keys += _leaves(value, f"{prefix}{name}.")
        elif value is not None:
            keys.append(f"{prefix}{name}")
    return keys
