"""The newer (v4) model zoo dialect, turned into the 3.x keys stquant's schema knows.

Each v4 key is, by what it means (v4 `parse_config.py`, `cfg_utils.py`, `quantization_utils.py` and
`README_QUANTIZATION_TOOL.md` of the model zoo services):
- mapped to the 3.x key stquant honours (`model.model_path` -> `general.model_path`,
  `onnx_extra_options.CalibMovingAverage: True` -> `extra_options: calib_moving_average`, ...), or
  accepted silently when its value is what stquant does anyway (`WeightSymmetric: True`, `weightType: Int8`);
- accepted and ignored, with one note line (`model.model_name` and the other keys that describe a model
  to train, `iterative_quant_parameters` without a search mode, ...);
- refused by name with a message saying what the key does and that it is "not supported"
  (mixed precision `operating_mode: full_auto`, Int4/Int16 types, SmoothQuant, tensor overrides, ...).
A PyTorch config is one message, not a list of unknown keys. Keys of no dialect stay unknown-key errors
(the schema reports them).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from engine.config import expressions
from engine.config.yaml_source import YamlMap, YamlSource

Found = list[tuple[str, str]]

_MODEL = "they describe a model for the reference to build or train; stquant quantizes the model file"
_ON_TARGET = "settings of the reference's on-target evaluation; stquant evaluates on the host"
IGNORED = {  # v4 key -> why stquant ignores it (one note line per reason)
    **{
        f"model.{name}": _MODEL
        for name in ("model_name", "input_shape", "pretrained", "pretrained_dataset", "model_type", "depth")
    },
    "general.device": "the reference's training device; stquant lets TensorFlow choose",
    "dataset.num_classes": "stquant counts the classes from class_names or the class folders",
    **{
        f"evaluation.{name}": _ON_TARGET
        for name in ("profile", "input_type", "output_type", "input_chpos", "output_chpos")
    },
}
PYTORCH_KEYS = {
    "general": (
        "workers",
        "no_prefetcher",
        "output",
        "seed",
        "log_interval",
        "recovery_interval",
        "checkpoint_hist",
        "save_images",
        "amp",
        "amp_dtype",
        "amp_impl",
        "no_ddp_bb",
        "synchronize_step",
        "pin_mem",
        "eval_metric",
        "tta",
        "local_rank",
        "use_multi_epochs_loader",
        "log_wandb",
        "log_tb",
    ),
    "dataset": ("train_split", "val_split", "test_split"),
}
QUANT_TYPES = ("Int4", "UInt4", "Int8", "UInt8", "Int16", "UInt16")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")  # v4 names MinMax, Entropy (stquant adds Percentile)


def translate(data: YamlMap, source: YamlSource) -> tuple[YamlMap, Found, Found]:
    """The mapping in the 3.x dialect, its problems (key, message) and notes (first key, line) on ignored keys."""
    torch = _pytorch_key(data)
    if torch:
        key, why = torch
        return (
            data,
            [
                (
                    key,
                    f"PyTorch models are not supported ({why}); stquant quantizes Keras (.h5, .keras) "
                    "and ONNX (.onnx) models: export the model to ONNX and give it as model.model_path",
                )
            ],
            [],
        )
    problems: Found = []
    notes: Found = []
    _move_model_path(data, source, problems)
    _rename(data, "dataset", "dataset_name", "name", source)
    _ignore(data, notes)
    _dataset(data, problems)
    _normalization(data, problems)
    _quantization(data, problems, notes)
    return data, problems, _merge_notes(notes)


# ---------------------------------------------------------------- sections


def _section(data: YamlMap, name: str) -> YamlMap:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _pytorch_key(data: YamlMap) -> tuple[str, str] | None:
    model = _section(data, "model")
    if str(model.get("framework", "")).lower() == "torch":
        return "model.framework", "framework: torch"
    for key, path in (
        ("model.model_path", model.get("model_path")),
        ("general.model_path", _section(data, "general").get("model_path")),
    ):
        if isinstance(path, str) and Path(path).suffix.lower() in (".pt", ".pth"):
            return key, f"a {Path(path).suffix} model"
    name = model.get("model_name")
    if isinstance(name, str) and name.endswith("_pt"):
        return "model.model_name", f"model {name}"
    for section, keys in PYTORCH_KEYS.items():
        for name in keys:
            if name in _section(data, section):
                return f"{section}.{name}", f"{section}.{name} is a PyTorch training setting"
    return None


def _move_model_path(data: YamlMap, source: YamlSource, problems: Found) -> None:
    model = _section(data, "model")
    if "model_path" not in model:
        return
    value = model.pop("model_path")
    if value is None:
        return
    general = _section(data, "general")
    data["general"] = general
    if general.get("model_path") not in (None, value):
        problems.append(("model.model_path", "conflicts with general.model_path; keep only one"))
    general["model_path"] = value
    source.lines.setdefault("general.model_path", source.lines.get("model.model_path", 0))


def _rename(data: YamlMap, section: str, old: str, new: str, source: YamlSource) -> None:
    values = _section(data, section)
    if old in values:
        value = values.pop(old)
        values.setdefault(new, value)
        source.lines.setdefault(f"{section}.{new}", source.lines.get(f"{section}.{old}", 0))


def _ignore(data: YamlMap, notes: Found) -> None:
    for key, why in IGNORED.items():
        section, name = key.split(".")
        values = _section(data, section)
        if name in values:
            if section != "model":  # the schema keeps the model description (for the model_path message)
                values.pop(name)
            notes.append((key, why))


def _dataset(data: YamlMap, problems: Found) -> None:
    dataset = _section(data, "dataset")
    if dataset.pop("data_download", None):
        problems.append(
            (
                "dataset.data_download",
                "downloads a named dataset for the reference; not supported: "
                "give class folders in training_path, quantization_path or test_path",
            )
        )
    if dataset.get("data_dir") is not None:
        problems.append(
            (
                "dataset.data_dir",
                "the root the reference reads named datasets from; not supported: "
                "give class folders in training_path, quantization_path or test_path",
            )
        )
    dataset.pop("data_dir", None)


def _normalization(data: YamlMap, problems: Found) -> None:
    """`normalization: {mean, std}` after rescaling is folded into rescaling when it is the same for every channel."""
    preprocessing = _section(data, "preprocessing")
    normalization = preprocessing.pop("normalization", None)
    if normalization is None:
        return
    try:
        mean, std = _uniform(normalization.get("mean", 0)), _uniform(normalization.get("std", 1))
        rescaling = preprocessing["rescaling"]
        scale, offset = _number(rescaling["scale"]), _number(rescaling["offset"])
    except (AttributeError, KeyError, TypeError, ValueError):
        problems.append(
            (
                "preprocessing.normalization",
                "per-channel mean/std is not supported: stquant folds one "
                "mean and one std into preprocessing.rescaling (numbers) and applies it to every channel",
            )
        )
        return
    if std == 0:
        problems.append(("preprocessing.normalization.std", "must not be 0"))
    elif (mean, std) != (0, 1):
        rescaling["scale"], rescaling["offset"] = scale / std, (offset - mean) / std


def _uniform(value: Any) -> float:
    values = {_number(v) for v in value} if isinstance(value, (list, tuple)) else {_number(value)}
    if len(values) != 1:
        raise ValueError("one value per channel")
    return values.pop()


def _number(value: Any) -> float:
    result = expressions.evaluate(value) if isinstance(value, str) else value
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise ValueError("not a number")
    return float(result)


# ---------------------------------------------------------------- quantization


def _quantization(data: YamlMap, problems: Found, notes: Found) -> None:
    quantization = _section(data, "quantization")
    mode = _plain(quantization.pop("operating_mode", None))
    if mode == "full_auto":
        problems.append(
            (
                "quantization.operating_mode",
                "full_auto (the reference's mixed-precision search of which "
                "weights can go to 4 bits) is not supported; stquant quantizes every weight to int8: "
                "remove operating_mode for a plain W8A8 quantization",
            )
        )
    elif mode == "inspection":
        notes.append(
            (
                "quantization.operating_mode",
                "inspection: stquant runs the plain quantization; its "
                "per-layer SQNR report (run_summary.json layer_errors) is the inspection",
            )
        )
    elif mode not in (None, "default"):
        problems.append(
            (
                "quantization.operating_mode",
                f"{mode!r} is not supported (the reference knows default, inspection and full_auto)",
            )
        )
    iterative = quantization.pop("iterative_quant_parameters", None)
    if iterative and mode != "full_auto":
        notes.append(
            ("quantization.iterative_quant_parameters", "used only by the reference's inspection and full_auto search")
        )
    _onnx_parameters(quantization, quantization.pop("onnx_quant_parameters", None), problems)
    _onnx_extra_options(quantization, quantization.pop("onnx_extra_options", None), problems, notes)


def _onnx_parameters(quantization: YamlMap, params: Any, problems: Found) -> None:
    prefix = "quantization.onnx_quant_parameters"
    if not _mapping(prefix, params, problems):
        return
    for name, what in (("weightType", "weights"), ("activType", "activations")):
        value = _plain(params.pop(name, None))
        if value not in (None, "Int8"):
            problems.append(
                (
                    f"{prefix}.{name}",
                    f"{value} {what} are not supported; stquant quantizes {what} "
                    "to Int8" + ("" if value in QUANT_TYPES else f" (types: {', '.join(QUANT_TYPES)})"),
                )
            )
    method = _plain(params.pop("calibrate_method", None))
    if method is not None:
        _map_calibration(quantization, method, problems)
    for name in ("op_types_to_quantize", "nodes_to_quantize", "nodes_to_exclude"):
        if params.pop(name, None):
            problems.append(
                (
                    f"{prefix}.{name}",
                    "choosing which nodes are quantized is not supported; stquant quantizes every node it can",
                )
            )
    _unknown(
        prefix,
        params,
        (
            "weightType",
            "activType",
            "calibrate_method",
            "op_types_to_quantize",
            "nodes_to_quantize",
            "nodes_to_exclude",
        ),
        problems,
    )


def _map_calibration(quantization: YamlMap, method: Any, problems: Found) -> None:
    key = "quantization.onnx_quant_parameters.calibrate_method"
    mapped = str(method).lower()
    if mapped not in CALIBRATION_METHODS:
        problems.append((key, f"{method!r} is not supported; use MinMax, Entropy or Percentile"))
    elif quantization.get("calibration_method") not in (None, mapped):
        problems.append((key, "conflicts with quantization.calibration_method; keep only one"))
    else:
        quantization["calibration_method"] = mapped


def _onnx_extra_options(quantization: YamlMap, options: Any, problems: Found, notes: Found) -> None:
    prefix = "quantization.onnx_extra_options"
    if not _mapping(prefix, options, problems):
        return
    fixed = {
        "WeightSymmetric": (True, "asymmetric weights are"),
        "ActivationSymmetric": (False, "symmetric activations are"),
        "QuantizeBias": (True, "float biases are"),
        "SmoothQuant": (False, "SmoothQuant (migrating activation outliers into the weights) is"),
    }
    for name, (value, what) in fixed.items():
        given = _plain(options.pop(name, None))
        if given is not None and given != value:
            problems.append((f"{prefix}.{name}", f"{what} not supported (stquant: {name}: {value})"))
    smooth = [name for name in ("SmoothQuantAlpha", "SmoothQuantFolding") if options.pop(name, None) is not None]
    if smooth:
        notes.append((f"{prefix}.{smooth[0]}", "settings of SmoothQuant, which is off"))
    for name in ("weights_tensor_override", "activations_tensor_override"):
        if options.pop(name, None):
            problems.append(
                (
                    f"{prefix}.{name}",
                    "per-tensor bit widths, scales and zero points are not supported; "
                    "stquant quantizes every tensor to int8 from calibration",
                )
            )
    moving = _plain(options.pop("CalibMovingAverage", None))
    if moving is not None:
        _map_moving_average(quantization, bool(moving), problems)
    _unknown(
        prefix,
        options,
        (
            *tuple(fixed),
            "SmoothQuantAlpha",
            "SmoothQuantFolding",
            "weights_tensor_override",
            "activations_tensor_override",
            "CalibMovingAverage",
        ),
        problems,
    )


def _map_moving_average(quantization: YamlMap, moving: bool, problems: Found) -> None:
    current = _plain(quantization.get("extra_options"))
    if current is None and moving:
        quantization["extra_options"] = "calib_moving_average"
    elif current is not None and not moving:
        problems.append(
            (
                "quantization.onnx_extra_options.CalibMovingAverage",
                "conflicts with quantization.extra_options; keep only one",
            )
        )


def _plain(value: Any) -> Any:
    """A YAML value as the reference reads it: 'None'/'null'/blank is None, 'True'/'False' are booleans."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("None", "null", ""):
            return None
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
    return value


def _mapping(key: str, value: Any, problems: Found) -> bool:
    if value is not None and not isinstance(value, dict):
        problems.append((key, f"expected a mapping of options (got {value!r})"))
    return isinstance(value, dict)


def _unknown(prefix: str, left: YamlMap, known: tuple[str, ...], problems: Found) -> None:
    for name in left:
        near = difflib.get_close_matches(name, known, n=1)
        problems.append((f"{prefix}.{name}", "unknown key" + (f"; did you mean {near[0]}?" if near else "")))


def _merge_notes(notes: Found) -> Found:
    """One note per reason: the keys that share it are listed together."""
    merged: dict[str, list[str]] = {}
    for key, why in notes:
        merged.setdefault(why, []).append(key)
    return [(keys[0], f"{', '.join(keys)}: ignored ({why})") for why, keys in merged.items()]
