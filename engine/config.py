"""The one config schema: the ST model zoo (3.x) image-classification YAML, plus its v4 dialect.

Loading order: YAML (with line numbers) -> overrides -> v4 dialect (`engine.config_dialects`) -> `${VAR}`
expansion -> pydantic schema (numeric strings such as `1/127.5` go through `engine.expressions`, never
`eval()`; `null` means the reference's default where the reference fills one in) -> what each operation
mode requires (`engine.config_modes`). Every problem is reported at once, one per line, as
`file:line: key.path: message`; the dialect's notes on ignored keys are `Config.notes`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticUseDefault

from engine import config_dialects, expressions
from engine.config_modes import (  # noqa: F401  (re-exported: the modes are part of the schema's API)
    BENCHMARK_MODES,
    EVALUATION_MODES,
    MODES,
    QUANTIZATION_MODES,
    RUNNABLE_MODES,
    mode_requirements,
)
from engine.errors import ConfigError
from engine.yaml_source import YamlSource, parse_yaml, read_yaml

DEFAULT_RUN_DIR = "./experiments_outputs/${now:%Y_%m_%d_%H_%M_%S}"

# ---------------------------------------------------------------- value coercion (reference-compatible)


def _none_string(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() in ("None", "null", "") else value


def _number(value: Any) -> Any:
    value = _none_string(value)
    if isinstance(value, str):
        try:
            return expressions.evaluate(value)
        except expressions.ExpressionError as exc:
            raise ValueError(str(exc)) from None
    return value


def _null_is_default(value: Any) -> Any:
    if _none_string(value) is None:
        raise PydanticUseDefault()
    return value


# `null` (or blank, or 'None') means the default, as the reference fills it in (`if not cfg.x: cfg.x = ...`).
NULL_IS_DEFAULT = BeforeValidator(_null_is_default)


def _boolean(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _canonical(choices: tuple[str, ...]):
    def pick(value: Any) -> Any:
        if isinstance(value, str):
            for choice in choices:
                if choice.lower() == value.strip().lower():
                    return choice
        return value

    return pick


Float = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_number)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
OptStr = Annotated[Optional[str], BeforeValidator(_none_string)]
Split = Annotated[Optional[float], Field(gt=0, le=1), BeforeValidator(_number)]
QUANTIZERS = ("TFlite_converter", "Onnx_quantizer")
Quantizer = Annotated[Literal["TFlite_converter", "Onnx_quantizer"], BeforeValidator(_canonical(QUANTIZERS))]
QuantType = Annotated[Literal["PTQ"], BeforeValidator(_canonical(("PTQ",)))]
IOType = Literal["int8", "uint8", "float"]
Interpolation = Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"]


class Section(BaseModel):
    """A config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class FreeSection(BaseModel):
    """A section the reference accepts but stquant does not use (kept as written)."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- sections


class General(Section):
    project_name: Annotated[str, NULL_IS_DEFAULT] = "<unnamed>"
    model_path: OptStr = None
    display_figures: Annotated[Bool, NULL_IS_DEFAULT] = True
    global_seed: Annotated[int, BeforeValidator(_number), NULL_IS_DEFAULT] = 123
    gpu_memory_limit: Annotated[Optional[Float], BeforeValidator(_none_string)] = None
    num_threads_tflite: Annotated[int, BeforeValidator(_number), NULL_IS_DEFAULT] = 1
    logs_dir: Annotated[str, NULL_IS_DEFAULT] = "logs"
    saved_models_dir: Annotated[str, NULL_IS_DEFAULT] = "saved_models"
    deterministic_ops: Annotated[Bool, NULL_IS_DEFAULT] = False
    model_type: OptStr = None


class ModelSection(Section):
    """v4 dialect `model:` section: its `model_path` is moved to `general.model_path`; the rest describes a
    model for the reference to build or train, which stquant ignores (with a note)."""

    framework: Optional[Literal["tf"]] = None
    model_name: OptStr = None
    input_shape: Any = None
    pretrained: Any = None
    pretrained_dataset: Any = None
    model_type: OptStr = None
    depth: Any = None


class Dataset(Section):
    name: Annotated[str, NULL_IS_DEFAULT] = "<unnamed>"
    class_names: Annotated[Optional[list[str]], BeforeValidator(_none_string)] = None
    classes_file_path: OptStr = None
    training_path: OptStr = None
    validation_path: OptStr = None
    test_path: OptStr = None
    quantization_path: OptStr = None
    prediction_path: OptStr = None
    validation_split: Annotated[float, Field(gt=0, lt=1), BeforeValidator(_number), NULL_IS_DEFAULT] = 0.2
    quantization_split: Split = None
    check_image_files: Annotated[Bool, NULL_IS_DEFAULT] = False
    seed: Annotated[Int, NULL_IS_DEFAULT] = 123


class Rescaling(Section):
    scale: Float
    offset: Float


class Resizing(Section):
    aspect_ratio: Literal["fit", "crop", "padding", "full_screen"] = "fit"
    interpolation: Annotated[Interpolation, NULL_IS_DEFAULT] = "bilinear"


class Preprocessing(Section):
    rescaling: Optional[Rescaling] = None  # required by every mode stquant runs (engine.config_modes)
    resizing: Resizing = Resizing()
    color_mode: Literal["grayscale", "rgb", "rgba"] = "rgb"


class Quantization(Section):
    quantizer: Quantizer
    quantization_type: QuantType = "PTQ"
    quantization_input_type: IOType = "float"
    quantization_output_type: IOType = "float"
    granularity: Annotated[Literal["per_channel", "per_tensor"], NULL_IS_DEFAULT] = "per_channel"
    optimize: Annotated[Bool, NULL_IS_DEFAULT] = False
    target_opset: Annotated[Int, NULL_IS_DEFAULT] = 17
    export_dir: Annotated[str, NULL_IS_DEFAULT] = "quantized_models"
    extra_options: Annotated[Optional[Literal["calib_moving_average"]], BeforeValidator(_none_string)] = None
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    bias_correction: Bool = False


class Evaluation(Section):
    gen_npy_input: Annotated[Bool, NULL_IS_DEFAULT] = False
    gen_npy_output: Annotated[Bool, NULL_IS_DEFAULT] = False
    npy_in_name: Annotated[str, NULL_IS_DEFAULT] = "unknown_npy_input"
    npy_out_name: Annotated[str, NULL_IS_DEFAULT] = "unknown_npy_output"
    target: Annotated[str, NULL_IS_DEFAULT] = "host"


class Benchmarking(Section):
    board: OptStr = None


class StEdgeAi(Section):
    version: Any = None
    optimization: OptStr = None
    on_cloud: Annotated[Optional[bool], BeforeValidator(_boolean)] = None
    path_to_stedgeai: OptStr = None
    path_to_stm32ai: OptStr = None


class Tools(Section):
    stedgeai: Optional[StEdgeAi] = None
    stm32ai: Optional[StEdgeAi] = None
    path_to_cubeIDE: OptStr = None


class Mlflow(Section):
    uri: Annotated[str, NULL_IS_DEFAULT] = "./experiments_outputs/mlruns"


class HydraRun(FreeSection):
    dir: str = DEFAULT_RUN_DIR


class Hydra(FreeSection):
    run: HydraRun = HydraRun()


class Config(Section):
    """A whole stquant / model zoo configuration."""

    general: Annotated[General, NULL_IS_DEFAULT] = General()
    model: Optional[ModelSection] = None
    operation_mode: Literal[MODES] = "quantization"  # type: ignore[valid-type]
    dataset: Annotated[Dataset, NULL_IS_DEFAULT] = Dataset()
    preprocessing: Optional[Preprocessing] = None
    quantization: Optional[Quantization] = None
    evaluation: Annotated[Evaluation, NULL_IS_DEFAULT] = Evaluation()
    benchmarking: Annotated[Benchmarking, NULL_IS_DEFAULT] = Benchmarking()
    tools: Optional[Tools] = None
    mlflow: Annotated[Mlflow, NULL_IS_DEFAULT] = Mlflow()
    hydra: Annotated[Hydra, NULL_IS_DEFAULT] = Hydra()
    data_augmentation: Optional[dict] = None
    custom_data_augmentation: Optional[dict] = None
    training: Optional[dict] = None
    prediction: Optional[dict] = None
    deployment: Optional[dict] = None

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """One line per group of v4 keys that were accepted but are ignored (`file:line: keys: ignored (why)`)."""
        return self._notes

    @property
    def base_dir(self) -> Path:
        """Folder of the config file: relative paths missing from the cwd are looked up here."""
        return self._base_dir

    def resolve_path(self, value: str) -> Path:
        """A config path: relative to the working directory (as the reference), else to the config file."""
        path = Path(os.path.expanduser(value))
        if path.is_absolute():
            return path
        if path.exists() or not (self._base_dir / path).exists():
            return path.resolve()
        return (self._base_dir / path).resolve()

    def run_dir(self, now: _dt.datetime | None = None) -> Path:
        """The run folder named by `hydra.run.dir` with `${now:FORMAT}` filled in."""
        now = now or _dt.datetime.now()
        text = re.sub(r"\$\{now:([^}]*)\}", lambda m: now.strftime(m.group(1)), self.hydra.run.dir)
        return Path(os.path.expanduser(text)).resolve()


# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One config problem: where it is, the dotted key, and what is wrong."""

    key: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{self.key}: {self.message}" if self.key else f"{prefix}{self.message}"


# ---------------------------------------------------------------- public API


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, normalise, validate and check a config file; raise ConfigError listing every problem."""
    source = read_yaml(Path(path))
    config = validate_source(source, overrides)
    config._base_dir = Path(path).resolve().parent
    return config


def load_config_text(text: str, name: str = "<config>", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Like load_config, from YAML text."""
    return validate_source(parse_yaml(text, name), overrides)


def validate_source(source: YamlSource, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a parsed YAML mapping (plus `key.path=value` overrides); raise ConfigError on problems."""
    config, problems = _build(source, overrides)
    if problems:
        raise ConfigError(problems)
    return config


def check(data: dict, name: str = "<config>") -> list[Problem]:
    """Every problem of a config mapping, without raising (for editors such as the wizard)."""
    _, problems = _build(YamlSource(data=data, name=name), ())
    return problems


def validate_field(key: str, value: Any) -> str | None:
    """Check one field's value (raw text or parsed) against the schema; return the message or None."""
    annotation = field_annotation(key)
    if annotation is None:
        return "unknown key"
    if isinstance(value, str) and value.strip() == "" and _is_optional(annotation):
        return None
    if _none_string(value) is None and _null_is_default_field(annotation):
        return None
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        return _message(exc.errors()[0])
    return None


def choices(key: str) -> list[str] | None:
    """The allowed values of an enumerated field, or None if it takes free values."""
    annotation = field_annotation(key)
    literal = _find_literal(annotation)
    return list(get_args(literal)) if literal is not None else None


def field_annotation(key: str) -> Any:
    """The type annotation of a dotted key in the schema, or None if there is no such key."""
    model: Any = Config
    annotation = None
    for part in key.split("."):
        model = model_of(annotation) if annotation is not None else model
        if model is None or part not in model.model_fields:
            return None
        annotation = _full_annotation(model, part)
    return annotation


def dump_config(config: Config | dict) -> str:
    """YAML text of a config (only the keys that were set); loading it back gives the same config."""
    data = config.model_dump(mode="json", exclude_unset=True) if isinstance(config, Config) else config
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def to_data(config: Config) -> dict:
    """The config as a plain mapping of the keys that were set (what `dump_config` writes)."""
    return config.model_dump(mode="json", exclude_unset=True)


# ---------------------------------------------------------------- internals


def _build(source: YamlSource, overrides) -> tuple[Config | None, list[Problem]]:
    problems: list[Problem] = []
    data = _deep_copy(source.data)
    for item in overrides:
        _apply_override(data, item, problems)
    data, found, notes = config_dialects.translate(data, source)
    problems += [Problem(key, message, source.where(key)) for key, message in found]
    data = _expand_env(data, "", source, problems)
    if problems:
        return None, problems
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        return None, [_problem(error, source) for error in exc.errors()]
    config._notes = [f"{source.where(key)}: {text}" for key, text in notes]
    problems = [Problem(key, message, source.where(key)) for key, message in mode_requirements(config)]
    return config, problems


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, key: str, source: YamlSource, problems: list[Problem]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{key}.{k}" if key else k, source, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, key, source, problems) for v in value]
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(Problem(key, f"environment variable {name} is not set", source.where(key)))
                return match.group(0)
            return os.environ[name]

        return _ENV.sub(substitute, value)
    return value


def _apply_override(data: dict, item: str, problems: list[Problem]) -> None:
    key, sep, text = item.partition("=")
    key = key.strip().lstrip("+")
    if not sep or not key:
        problems.append(Problem("", f"override {item!r} must look like key.path=value", "command line"))
        return
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _problem(error: dict, source: YamlSource) -> Problem:
    loc = [str(part) for part in error["loc"] if not _is_validator_tag(part)]
    key = ".".join(loc)
    return Problem(key, _message(error, loc), source.where(key))


def _is_validator_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _message(error: dict, loc: list[str] | None = None) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden" and loc:
        parent = field_annotation(".".join(loc[:-1])) if len(loc) > 1 else Config
        model = model_of(parent) if parent is not Config else Config
        names = list(model.model_fields) if model else []
        near = difflib.get_close_matches(loc[-1], names, n=1)
        return "unknown key" + (f"; did you mean {near[0]}?" if near else f"; allowed keys: {', '.join(names)}")
    if kind == "missing":
        return "missing required key"
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed; allowed values: {allowed.replace(' or ', ', ')}"
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    return f"{error['msg']} (got {value!r})" if not isinstance(value, dict) else error["msg"]


def _full_annotation(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    if info.metadata:
        return Annotated[tuple([info.annotation, *info.metadata])]  # type: ignore[misc]
    return info.annotation


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic section model inside an annotation (e.g. Optional[Quantization]), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_of(arg)
        if found is not None:
            return found
    return None


def _find_literal(annotation: Any) -> Any:
    if get_origin(annotation) is Literal:
        return annotation
    for arg in get_args(annotation):
        if not isinstance(arg, type) or arg is not type(None):
            found = _find_literal(arg)
            if found is not None:
                return found
    return None


def _null_is_default_field(annotation: Any) -> bool:
    return get_origin(annotation) is Annotated and any(m is NULL_IS_DEFAULT for m in get_args(annotation)[1:])


def _is_optional(annotation: Any) -> bool:
    if get_origin(annotation) is Union:
        return type(None) in get_args(annotation)
    return any(_is_optional(arg) for arg in get_args(annotation) if get_origin(annotation) is Annotated)
