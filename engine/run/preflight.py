"""Checks of a valid config against the files it names, run by `validate` and before every run.

Nothing here imports TensorFlow: the model is described from its stored metadata (`engine.models.info`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.common.errors import ConfigError, InputError, StquantError, first_line
from engine.common.files import open_regular
from engine.config.modes import HELD_OUT, evaluation_source
from engine.config.schema import (
    EVALUATION_MODES,
    KERAS_MAX_OPSET,
    QUANTIZATION_MODES,
    RUNNABLE_MODES,
    Config,
    Quantization,
    mode_message,
)
from engine.config.unused_keys import unused_key_warnings, used_dataset_keys
from engine.data import dataset

if TYPE_CHECKING:  # imported where a model is read: a config with problems is checked without numpy or Pillow
    from engine.data.preprocess import ImageSpec
    from engine.models.info import ModelInfo

DATASET_KEYS = ("quantization_path", "training_path", "validation_path", "test_path")  # calibration first


@dataclass
class Plan:
    """What a run will use: the model, how to preprocess for it, and the datasets."""

    model_path: Path
    model: ModelInfo
    spec: ImageSpec | None
    class_names: list[str] | None
    datasets: dict[str, dataset.ClassFolders] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # one line each, no duplicates: shown by validate and run

    def image_spec(self) -> ImageSpec:
        """`spec`, for a stage that feeds the model images (every mode but benchmarking has a preprocessing section)."""
        if self.spec is None:
            raise ConfigError("preprocessing: section required to feed the model images")
        return self.spec


@dataclass
class ImageSet:
    """Image files with their labels, from one config key: the calibration or the evaluation images."""

    files: list[Path]
    labels: list[int]
    name: str  # evaluation: test_set or validation_set (as in run_summary.json); calibration: calibration
    key: str  # the config key the files come from, for messages (dataset.validation_split: training_path's tail)


def evaluation_set(config: Config, plan: Plan) -> ImageSet | None:
    """The evaluation images, one rule for run, compare and recover: `dataset.test_path`, else
    `dataset.validation_path`, else the last `validation_split` of `dataset.training_path` shuffled with
    `dataset.seed` (the model zoo's rule), else the quantization images not used for calibration
    (`engine.config.modes.evaluation_source`, the rule the config check applies too); None when there are none.
    `plan` was prepared for a mode that evaluates."""
    ds = config.dataset
    key = evaluation_source(config.operation_mode, lambda name: getattr(ds, name))
    if key is None:
        return None
    if key == HELD_OUT:
        return _held_out(config, plan)
    data = plan.datasets[key]
    if key != "training_path":
        return ImageSet(list(data.files), list(data.labels), key.removesuffix("_path") + "_set", f"dataset.{key}")
    files, labels = dataset.validation_tail(data, ds.validation_split, ds.seed)
    return ImageSet(files, labels, "validation_set", "dataset.validation_split")


def calibration_set(config: Config, plan: Plan) -> ImageSet | None:
    """The calibration images: `dataset.quantization_path` (else `training_path`) shuffled with `dataset.seed`,
    the first `quantization_split` of them; None when neither is given (random calibration)."""
    ds = config.dataset
    key = next((key for key in ("quantization_path", "training_path") if key in plan.datasets), None)
    if key is None:
        return None
    files, labels = dataset.shuffled(plan.datasets[key], ds.seed)
    count = len(dataset.take_split(files, ds.quantization_split, "dataset.quantization_split"))
    return ImageSet(files[:count], labels[:count], "calibration", f"dataset.{key}")


def _held_out(config: Config, plan: Plan) -> ImageSet:
    """The quantization images that do not calibrate (shuffled with `dataset.seed`; a split below 1 leaves some)."""
    files, labels = dataset.shuffled(plan.datasets["quantization_path"], config.dataset.seed)
    used = len(dataset.take_split(files, config.dataset.quantization_split, "dataset.quantization_split"))
    return ImageSet(files[used:], labels[used:], "held_out_quantization_images", "dataset.quantization_split")


def overlap_warning(calibration: ImageSet, evaluation: ImageSet) -> str | None:
    """A line when evaluation images are also calibration images (same file once links are resolved)."""
    folders: dict[str, str] = {}  # each class folder resolved once
    calibrated = set(_resolved(calibration.files, folders))
    shared = sum(path in calibrated for path in _resolved(evaluation.files, folders))
    if not shared:
        return None
    total = len(evaluation.files)
    which = (
        f"the {total} validation images split from dataset.training_path"
        if evaluation.key == "dataset.validation_split"
        else f"its {total} images"
    )
    return (
        f"{evaluation.key}: {shared} of {which} are also calibration images ({calibration.key}); "
        f"accuracy on them is optimistic"
    )


def _resolved(files: list[Path], folders: dict[str, str]) -> list[str]:
    """`os.path.realpath` of each file, its folder resolved once (kept in `folders`) unless the file is a link."""
    found = []
    for path in files:
        folder, name = os.path.split(path)
        if os.path.islink(path):
            found.append(os.path.realpath(path))
            continue
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        found.append(f"{folders[folder]}{os.sep}{name}")
    return found


def prepare(config: Config) -> Plan:
    """Resolve and check the model and datasets; raise ConfigError / InputError naming the key.

    `Plan.warnings` gets one line per thing the user should know before a run (ignored keys, skipped
    files, extra or empty class folders, evaluation images that are also calibration images), each once."""
    mode = config.operation_mode
    if mode not in RUNNABLE_MODES:
        raise ConfigError(f"operation_mode: {mode_message(mode)}")
    if not config.general.model_path:  # load_config checks it (engine.config.modes)
        raise ConfigError(f"general.model_path: required for operation_mode {mode}")
    problems = input_problems(config)
    if problems:
        raise one_error(problems)
    from engine.data.preprocess import ImageSpec
    from engine.models.info import describe_model, require_image_classifier

    model_path = config.resolve_path(config.general.model_path)
    try:
        model = describe_model(model_path)
    except StquantError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line naming it, not a traceback
        raise InputError(f"general.model_path: cannot read the model {model_path} ({first_line(exc, 120)})") from None
    height, width, _ = require_image_classifier(model)
    spec = None
    if config.preprocessing is not None:
        spec = ImageSpec.from_config(config.preprocessing, height, width)
        if spec.channels != model.channels:
            raise ConfigError(
                f"preprocessing.color_mode: {config.preprocessing.color_mode} gives {spec.channels} channel(s) "
                f"but the model {model_path.name} expects {model.channels}"
            )
    if config.quantization is not None and mode in QUANTIZATION_MODES:
        _check_opset(config.quantization, model)
    plan = Plan(model_path=model_path, model=model, spec=spec, class_names=None)
    plan.warnings.extend(config.notes)
    plan.warnings.extend(_output_warnings(model))
    plan.warnings.extend(unused_key_warnings(config))
    _scan_datasets(config, plan)
    if mode in QUANTIZATION_MODES and mode in EVALUATION_MODES:
        calibration, evaluation = calibration_set(config, plan), evaluation_set(config, plan)
        overlap = overlap_warning(calibration, evaluation) if calibration and evaluation else None
        if overlap:
            plan.warnings.append(overlap)
    plan.warnings[:] = list(dict.fromkeys(plan.warnings))
    return plan


def input_problems(config: Config) -> list[StquantError]:
    """Every file and folder the config names that is missing, of the wrong kind or unreadable (each naming its
    key), all in one pass."""
    used = used_dataset_keys(config)
    checks: list[tuple[str, str, Callable[[Path, str], object]]] = [
        (f"dataset.{key}", getattr(config.dataset, key), dataset.check_root) for key in DATASET_KEYS if key in used
    ]
    if config.general.model_path:
        checks.insert(0, ("general.model_path", config.general.model_path, _check_model_file))
    problems: list[StquantError] = []
    for key, value, check in checks:
        try:
            check(config.resolve_path(value), key)
        except StquantError as exc:
            problems.append(exc)
    return problems


def one_error(problems: list[StquantError]) -> StquantError:
    """One error for several problems, one line each: exit 3 when all are missing or unreadable inputs, else 2."""
    if len(problems) == 1:
        return problems[0]
    if all(isinstance(problem, InputError) for problem in problems):
        return InputError("\n".join(map(str, problems)))
    return ConfigError(problems)


def _check_opset(settings: Quantization, model: ModelInfo) -> None:
    """ConfigError if the ONNX quantizer would have to convert the model to an opset no converter reaches."""
    if settings.quantizer != "Onnx_quantizer":
        return
    if model.format == "onnx":
        import onnx

        highest, converter = onnx.defs.onnx_opset_version(), f"onnx {onnx.__version__}"
    else:
        highest, converter = KERAS_MAX_OPSET, "tf2onnx (Keras to ONNX)"
    if settings.target_opset > highest:
        raise ConfigError(
            f"quantization.target_opset: {settings.target_opset} is above {highest}, the highest "
            f"opset {converter} converts to"
        )


def _output_warnings(model: ModelInfo) -> list[str]:
    """A line when the classifier's output is not (N, classes): its values are read as flat class scores."""
    shape = model.output_shape
    if shape is None or len(shape) <= 2:
        return []
    return [
        f"{Path(model.path).name}: output {model.output_name!r} has shape {shape}, not (N, classes); "
        f"its values are read as flattened class scores"
    ]


def _check_model_file(path: Path, key: str) -> None:
    _check_readable_file(path, key, "model file")


def _check_readable_file(path: Path, key: str, what: str) -> None:
    """InputError naming the key unless `path` is a file this process can open."""
    try:
        with open_regular(path):
            pass
    except FileNotFoundError:
        raise InputError(f"{key}: {what} not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{key}: {path} is a folder; expected a {what}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{key}: cannot read the {what} {path} ({getattr(exc, 'strerror', None) or exc})") from None


def _scan_datasets(config: Config, plan: Plan) -> None:
    ds = config.dataset
    used = used_dataset_keys(config)
    given = ds.class_names
    scanned: dict[Path, dataset.ClassFolders] = {}  # one scan (and one set of warnings) per folder
    for key in DATASET_KEYS:
        if key not in used:
            continue
        root = config.resolve_path(getattr(ds, key))
        if root not in scanned:
            scanned[root] = dataset.scan(root, given, f"dataset.{key}")
            plan.warnings.extend(scanned[root].warnings)
        plan.datasets[key] = scanned[root]
        given = given or scanned[root].class_names
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
    if config.operation_mode in EVALUATION_MODES and not (ds.test_path or ds.validation_path) and ds.training_path:
        dataset.check_validation_split(len(plan.datasets["training_path"]), ds.validation_split)
