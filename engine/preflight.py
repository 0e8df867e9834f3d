"""Checks of a valid config against the files it names, run by `validate` and before every run.

Nothing here imports TensorFlow: the model is described from its stored metadata (`engine.model_info`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine import dataset
from engine.config import EVALUATION_MODES, QUANTIZATION_MODES, RUNNABLE_MODES, Config
from engine.errors import ConfigError, InputError
from engine.model_info import ModelInfo, describe_model
from engine.preprocess import ImageSpec

DATASET_KEYS = ("training_path", "validation_path", "test_path", "quantization_path")


@dataclass
class Plan:
    """What a run will use: the model, how to preprocess for it, and the datasets."""

    model_path: Path
    model: ModelInfo
    spec: ImageSpec | None
    class_names: list[str] | None
    datasets: dict[str, dataset.ClassFolders] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # one line each, no duplicates: shown by validate and run


def prepare(config: Config) -> Plan:
    """Resolve and check the model and datasets; raise ConfigError / InputError naming the key."""
    mode = config.operation_mode
    if mode not in RUNNABLE_MODES:
        raise ConfigError(f"operation_mode: {mode!r} is not run by stquant; supported: {', '.join(RUNNABLE_MODES)}")
    model_path = config.resolve_path(config.general.model_path)
    if not model_path.is_file():
        raise InputError(f"general.model_path: model file not found: {model_path}")
    model = describe_model(model_path)
    spec = None
    if config.preprocessing is not None:
        spec = ImageSpec.from_config(config.preprocessing, model.height, model.width)
        if spec.channels != model.channels:
            raise ConfigError(
                f"preprocessing.color_mode: {config.preprocessing.color_mode} gives {spec.channels} channel(s) "
                f"but the model {model_path.name} expects {model.channels}"
            )
    plan = Plan(model_path=model_path, model=model, spec=spec, class_names=None)
    _scan_datasets(config, plan)
    return plan


def _scan_datasets(config: Config, plan: Plan) -> None:
    ds = config.dataset
    needed = set(DATASET_KEYS) if config.operation_mode in EVALUATION_MODES else {"quantization_path", "training_path"}
    given = ds.class_names
    for key in DATASET_KEYS:
        value = getattr(ds, key)
        if not value or key not in needed:
            continue
        folders = dataset.scan(config.resolve_path(value), given, f"dataset.{key}")
        plan.datasets[key] = folders
        given = given or folders.class_names
    plan.class_names = sorted(given) if given else None
    if plan.class_names and plan.model.output_width:
        n, width = len(plan.class_names), plan.model.output_width
        if width != n and not (n == 2 and width == 1):
            raise ConfigError(
                f"dataset.class_names: {n} classes ({', '.join(plan.class_names[:6])}{', ...' if n > 6 else ''}) "
                f"but the model outputs {width} scores"
            )
    if config.operation_mode in QUANTIZATION_MODES and ds.quantization_split is not None:
        source = plan.datasets.get("quantization_path") or plan.datasets.get("training_path")
        if source is not None:
            dataset.take_split(source.files, ds.quantization_split, "dataset.quantization_split")

