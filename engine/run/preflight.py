"""Checks of a valid config against the files it names, run by `validate` and before every run.

Nothing here imports TensorFlow: the model is described from its stored metadata (`engine.models.info`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.common.errors import ConfigError, InputError, StquantError, first_line
from engine.common.files import open_regular
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
from engine.data.preprocess import ImageSpec
from engine.models.info import ModelInfo, describe_model, require_image_classifier

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


def prepare(config: Config) -> Plan:
    """Resolve and check the model and datasets; raise ConfigError / InputError naming the key.

    `Plan.warnings` gets one line per thing the user should know before a run (ignored keys, skipped
    files, extra or empty class folders), each once."""
    mode = config.operation_mode
    if mode not in RUNNABLE_MODES:
        raise ConfigError(f"operation_mode: {mode_message(mode)}")
    if not config.general.model_path:  # load_config checks it (engine.config.modes)
        raise ConfigError(f"general.model_path: required for operation_mode {mode}")
    model_path = config.resolve_path(config.general.model_path)
    _check_readable_file(model_path, "general.model_path", "model file")
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
    plan.warnings[:] = list(dict.fromkeys(plan.warnings))
    return plan


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
