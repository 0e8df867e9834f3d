"""The one config schema: the ST model zoo (3.x) image-classification YAML, plus its v4 dialect.

Loading order: YAML (with line numbers) -> overrides -> v4 dialect (`engine.config.dialects`) -> `${VAR}`
expansion -> pydantic schema (numeric strings such as `1/127.5` go through `engine.config.expressions`, never
`eval()`; `null` means the reference's default where the reference fills one in) -> what each operation
mode requires (`engine.config.modes`). Every problem is reported at once, one per line, as
`file:line: key.path: message`; the dialect's notes on ignored keys are `Config.notes`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticUseDefault

from engine.common.errors import ConfigError, shorten
from engine.config import dialects as config_dialects, expressions
from engine.config.keys import delete_key, set_key
from engine.config.modes import (  # re-exported (`X as X`): the modes are part of the schema's API
    BENCHMARK_MODES as BENCHMARK_MODES,
    EVALUATION_MODES as EVALUATION_MODES,
    MODES as MODES,
    QUANTIZATION_MODES as QUANTIZATION_MODES,
    RUNNABLE_MODES as RUNNABLE_MODES,
    mode_requirements as mode_requirements,
)
from engine.config.yaml_source import MAX_DEPTH, YamlMap, YamlSource, parse_value, parse_yaml, read_yaml

READ_ONLY_MODES = tuple(mode for mode in MODES if mode not in RUNNABLE_MODES)
DEFAULT_RUN_DIR = "./experiments_outputs/${now:%Y_%m_%d_%H_%M_%S}"
SEED_RANGE = (0, 2**32 - 1)  # what numpy's RandomState (the reference's shuffle) and set_random_seed accept
OPSET_MIN = 13  # per-channel QDQ needs opset 13 in ONNX Runtime (the upper bound depends on the model: preflight)
KERAS_MAX_OPSET = 18  # the highest opset tf2onnx converts Keras models to
PATH_MAX_BYTES, NAME_MAX_BYTES = 4095, 255  # Linux PATH_MAX - 1 and NAME_MAX

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


def _path_text(value: str | None) -> str | None:
    """A path the operating system can take: no NUL, encodable, no name over 255 bytes, at most 4095 bytes."""
    if value is None:
        return None
    if "\0" in value:
        raise ValueError("contains a NUL character; not a valid path")
    if value.startswith("~") and os.path.expanduser(value) == value and value != "~":
        user = value[1:].split("/", 1)[0]
        raise ValueError(f"no user named {user[:40]!r} on this computer (for {value[:40].split('/')[0]!r})")
    try:
        raw = os.fsencode(os.path.expanduser(value))
    except (UnicodeError, KeyError, RuntimeError):
        raise ValueError("contains characters that cannot be part of a file name (invalid Unicode)") from None
    if len(raw) > PATH_MAX_BYTES:
        raise ValueError(f"path too long ({len(raw)} bytes; the system allows {PATH_MAX_BYTES})")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX_BYTES:
        raise ValueError(
            f"a file or folder name in this path is too long ({len(longest)} bytes; the system allows {NAME_MAX_BYTES})"
        )
    return value


def _inside_run_folder(value: str) -> str:
    """`quantization.export_dir` names a folder inside the run folder, so a run never writes over older files."""
    if os.path.isabs(os.path.expanduser(value)) or ".." in Path(value).parts:
        raise ValueError(f"{value[:60]!r} must be a folder inside the run folder (relative, without '..')")
    return value


def _distinct(what: str) -> Callable[[list[str] | None], list[str] | None]:
    def check(names: list[str] | None) -> list[str] | None:
        if names:
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"{what} {', '.join(map(repr, repeated))} listed more than once")
        return names

    return check


def _boolean(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _canonical(choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def pick(value: Any) -> Any:
        if isinstance(value, str):
            for choice in choices:
                if choice.lower() == value.strip().lower():
                    return choice
        return value

    return pick


Float = Annotated[FiniteFloat, BeforeValidator(_number)]
Seed = Annotated[int, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1]), BeforeValidator(_number)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
OptStr = Annotated[str | None, BeforeValidator(_none_string)]
PathStr = Annotated[str | None, AfterValidator(_path_text), BeforeValidator(_none_string)]
FolderStr = Annotated[str, AfterValidator(_path_text)]
Split = Annotated[FiniteFloat | None, Field(gt=0, le=1), BeforeValidator(_number)]
QUANTIZERS = ("TFlite_converter", "Onnx_quantizer")
Quantizer = Annotated[Literal["TFlite_converter", "Onnx_quantizer"], BeforeValidator(_canonical(QUANTIZERS))]
QuantType = Annotated[Literal["PTQ"], BeforeValidator(_canonical(("PTQ",)))]
IOType = Literal["int8", "uint8", "float"]
LayerName = Annotated[str, Field(min_length=1, max_length=1000)]
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
    model_path: PathStr = Field(
        None,
        description="The float model to quantize or evaluate: Keras .h5/.keras or .onnx (.tflite for benchmarking).",
    )
    display_figures: Annotated[Bool, NULL_IS_DEFAULT] = True
    global_seed: Annotated[Seed, NULL_IS_DEFAULT] = 123
    gpu_memory_limit: Annotated[Float | None, Field(gt=0), BeforeValidator(_none_string)] = None
    num_threads_tflite: Annotated[int, Field(ge=1), BeforeValidator(_number), NULL_IS_DEFAULT] = 1
    logs_dir: Annotated[FolderStr, NULL_IS_DEFAULT] = "logs"
    saved_models_dir: Annotated[FolderStr, NULL_IS_DEFAULT] = "saved_models"
    deterministic_ops: Annotated[Bool, NULL_IS_DEFAULT] = False
    model_type: OptStr = None


class ModelSection(Section):
    """v4 dialect `model:` section: its `model_path` is moved to `general.model_path`; the rest describes a
    model for the reference to build or train, which stquant ignores (with a note)."""

    framework: Literal["tf"] | None = None
    model_name: OptStr = None
    input_shape: Any = None
    pretrained: Any = None
    pretrained_dataset: Any = None
    model_type: OptStr = None
    depth: Any = None


class Dataset(Section):
    name: Annotated[str, NULL_IS_DEFAULT] = Field(
        "<unnamed>", description="The dataset's name, for reports and MLflow only."
    )
    class_names: Annotated[list[str] | None, AfterValidator(_distinct("class")), BeforeValidator(_none_string)] = Field(
        None, description="Class names in the model's output order (sorted when read). Empty: the class folders."
    )
    classes_file_path: PathStr = None
    training_path: PathStr = Field(
        None,
        description="Class folders of the training set; used for calibration when there is no quantization folder.",
    )
    validation_path: PathStr = Field(None, description="Class folders to evaluate on when there is no test folder.")
    test_path: PathStr = Field(None, description="Class folders the float and int8 models are evaluated on.")
    quantization_path: PathStr = Field(
        None,
        description="Class folders of the calibration images (one sub-folder "
        "per class). Empty: the training set, else random data.",
    )
    prediction_path: PathStr = None
    validation_split: Annotated[FiniteFloat, Field(gt=0, lt=1), BeforeValidator(_number), NULL_IS_DEFAULT] = 0.2
    quantization_split: Split = Field(
        None,
        description="Fraction (0..1] of the calibration images used, in seeded "
        "random order. Lower it to calibrate faster.",
    )
    check_image_files: Annotated[Bool, NULL_IS_DEFAULT] = False
    seed: Annotated[Seed, NULL_IS_DEFAULT] = Field(
        123, description="Seed of the shuffle that picks the quantization_split images."
    )


class Rescaling(Section):
    scale: Float = Field(
        description="Model input = pixel x scale + offset; 1/255 gives 0..1, 1/127.5 with "
        "offset -1 gives -1..1. Must match training."
    )
    offset: Float = Field(description="Added after scaling: 0 for 0..1 inputs, -1 for -1..1. Must match training.")


class Resizing(Section):
    aspect_ratio: Literal["fit", "crop", "padding", "full_screen"] = Field(
        "fit", description="fit stretches to the input size; crop cuts the centre; padding keeps the whole image."
    )
    interpolation: Annotated[Interpolation, NULL_IS_DEFAULT] = Field(
        "bilinear", description="Resampling filter when resizing images; use the one the model was trained with."
    )


class Preprocessing(Section):
    rescaling: Rescaling | None = None  # required by every mode stquant runs (engine.config.modes)
    resizing: Resizing = Resizing()
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field(
        "rgb", description="Channels fed to the model: grayscale 1, rgb 3, rgba 4; must match the model's input."
    )


class Quantization(Section):
    quantizer: Quantizer = Field(
        description="TFlite_converter writes an int8 .tflite (Keras models); "
        "Onnx_quantizer writes a QDQ .onnx (Keras or ONNX models)."
    )
    quantization_type: QuantType = "PTQ"
    quantization_input_type: IOType = Field(
        "float",
        description="Type of the int8 model's input: uint8 or int8 "
        "when the board feeds raw pixels, float to keep a float input.",
    )
    quantization_output_type: IOType = Field(
        "float",
        description="Type of the int8 model's output: float for "
        "scores as is, int8/uint8 to save a dequantize on the board.",
    )
    granularity: Annotated[Literal["per_channel", "per_tensor"], NULL_IS_DEFAULT] = Field(
        "per_channel",
        description="One weight scale per output channel (accurate) or per tensor (needs optimize to keep accuracy).",
    )
    optimize: Annotated[Bool, NULL_IS_DEFAULT] = Field(
        False,
        description="Fold batch norms and equalize layer ranges before quantizing; turn on with "
        "per_tensor granularity.",
    )
    target_opset: Annotated[int, Field(ge=OPSET_MIN), BeforeValidator(_number), NULL_IS_DEFAULT] = Field(
        17, description="ONNX opset of the quantized model (13 or more); lower it only for an older runtime."
    )
    export_dir: Annotated[FolderStr, AfterValidator(_inside_run_folder), NULL_IS_DEFAULT] = Field(
        "quantized_models", description="Folder inside the run folder where the quantized model is written."
    )
    extra_options: Annotated[Literal["calib_moving_average"] | None, BeforeValidator(_none_string)] = Field(
        None, description="ONNX only: calib_moving_average averages the calibration ranges over batches."
    )
    calibration_method: Literal["minmax", "entropy", "percentile", "mse"] = Field(
        "minmax",
        description="Activation ranges: minmax keeps every value; percentile, entropy, mse clip outliers "
        "(try when int8 accuracy drops).",
    )
    bias_correction: Bool = Field(
        False,
        description="Subtract the output shift caused by weight rounding (64 "
        "calibration images); try it when int8 accuracy drops.",
    )
    float_layers: Annotated[list[LayerName], NULL_IS_DEFAULT, AfterValidator(_distinct("layer"))] = Field(
        [],
        description="Layers kept in float (stquant recover writes this list); their inputs are dequantized "
        "and their outputs quantized again. Names as in the per-layer report.",
    )


class Evaluation(Section):
    gen_npy_input: Annotated[Bool, NULL_IS_DEFAULT] = False
    gen_npy_output: Annotated[Bool, NULL_IS_DEFAULT] = False
    npy_in_name: Annotated[str, NULL_IS_DEFAULT] = "unknown_npy_input"
    npy_out_name: Annotated[str, NULL_IS_DEFAULT] = "unknown_npy_output"
    target: Annotated[str, NULL_IS_DEFAULT] = "host"


class Benchmarking(Section):
    board: OptStr = Field(
        None,
        description="STM32 board the footprint is checked against (fit, headroom, estimated time); see stquant boards.",
    )


class StEdgeAi(Section):
    version: Any = None
    optimization: OptStr = None
    on_cloud: Annotated[bool | None, BeforeValidator(_boolean)] = None
    path_to_stedgeai: PathStr = None
    path_to_stm32ai: PathStr = None


class Tools(Section):
    stedgeai: StEdgeAi | None = None
    stm32ai: StEdgeAi | None = None
    path_to_cubeIDE: PathStr = None


class Mlflow(Section):
    uri: Annotated[FolderStr, NULL_IS_DEFAULT] = "./experiments_outputs/mlruns"


def _run_dir_text(value: str) -> str:
    """`hydra.run.dir` must give a valid path once `${now:FORMAT}` is filled in."""
    _path_text(_fill_now(value, _dt.datetime.now()))
    return value


class HydraRun(FreeSection):
    dir: Annotated[str, AfterValidator(_run_dir_text)] = DEFAULT_RUN_DIR


class Hydra(FreeSection):
    run: HydraRun = HydraRun()


class Config(Section):
    """A whole stquant / model zoo configuration."""

    general: Annotated[General, NULL_IS_DEFAULT] = General()
    model: ModelSection | None = None
    operation_mode: Literal[MODES] = Field(  # type: ignore[valid-type]
        "quantization",
        description="What a run does: quantize, evaluate on the test set, benchmark the "
        "footprint, or a chain_* of them.",
    )
    dataset: Annotated[Dataset, NULL_IS_DEFAULT] = Dataset()
    preprocessing: Preprocessing | None = None
    quantization: Quantization | None = None
    evaluation: Annotated[Evaluation, NULL_IS_DEFAULT] = Evaluation()
    benchmarking: Annotated[Benchmarking, NULL_IS_DEFAULT] = Benchmarking()
    tools: Tools | None = None
    mlflow: Annotated[Mlflow, NULL_IS_DEFAULT] = Mlflow()
    hydra: Annotated[Hydra, NULL_IS_DEFAULT] = Hydra()
    data_augmentation: YamlMap | None = None
    custom_data_augmentation: YamlMap | None = None
    training: YamlMap | None = None
    prediction: YamlMap | None = None
    deployment: YamlMap | None = None

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)
    _notes: list[str] = PrivateAttr(default_factory=list)

    def located_at(self, path: Path) -> None:
        """Record the config file this config was read from (relative paths are also looked up beside it)."""
        self._source = Path(path)
        self._base_dir = self._source.resolve().parent

    @property
    def source_path(self) -> Path | None:
        """The config file this config was read from (None for text or a mapping): an input no run writes over."""
        return self._source

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
        if os.path.exists(path) or not os.path.exists(self._base_dir / path):  # never raise (long names...)
            return path.resolve()
        return (self._base_dir / path).resolve()

    def run_dir(self, now: _dt.datetime | None = None) -> Path:
        """The run folder named by `hydra.run.dir` with `${now:FORMAT}` filled in."""
        text = _fill_now(self.hydra.run.dir, now or _dt.datetime.now())
        return Path(os.path.expanduser(text)).resolve()


def _fill_now(text: str, now: _dt.datetime) -> str:
    """`text` with every `${now:FORMAT}` replaced by the formatted time."""

    def fill(match: re.Match[str]) -> str:
        try:
            return now.strftime(match.group(1))
        except (ValueError, UnicodeError):
            raise ValueError(f"invalid time format {match.group(1)[:40]!r} in ${{now:...}}") from None

    return re.sub(r"\$\{now:([^}]*)\}", fill, text)


# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One config problem: where it is, the dotted key, and what is wrong."""

    key: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        key = shorten(self.key)
        return f"{prefix}{key}: {self.message}" if key else f"{prefix}{self.message}"


# ---------------------------------------------------------------- public API


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, normalise, validate and check a config file; raise ConfigError listing every problem."""
    source = read_yaml(Path(path))
    config = validate_source(source, overrides)
    config.located_at(Path(path))
    return config


def load_config_text(text: str, name: str = "<config>", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Like load_config, from YAML text."""
    return validate_source(parse_yaml(text, name), overrides)


def check_file(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Config | None, list[Problem]]:
    """Every problem `load_config` finds, and the config read without the keys they name (None when that is not
    valid either), so that the checks of the files it names still run in the same pass."""
    source = read_yaml(Path(path))
    config, problems = _build(source, overrides)
    if config is None:
        data = _deep_copy(source.data)
        for problem in problems:
            if problem.key:
                delete_key(data, problem.key)
        config, _ = _build(replace(source, data=data), overrides)
    if config is not None:
        config.located_at(Path(path))
    return config, problems


def validate_source(source: YamlSource, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a parsed YAML mapping (plus `key.path=value` overrides); raise ConfigError on problems."""
    config, problems = _build(source, overrides)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def check(data: YamlMap, name: str = "<config>") -> list[Problem]:
    """Every problem of a config mapping, without raising (for editors such as the wizard); `data` is left as it is."""
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
        _field_adapter(key).validate_python(value)
    except ValidationError as exc:
        return _message(exc.errors()[0])
    return None


@functools.cache
def _field_adapter(key: str) -> TypeAdapter[Any]:
    """The validator of a schema key's type (built once per key: the wizard checks a field at every edit)."""
    return TypeAdapter(field_annotation(key))


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


def dump_config(config: Config | YamlMap) -> str:
    """YAML text of a config (only the keys that were set); loading it back gives the same config."""
    data = config.model_dump(mode="json", exclude_unset=True) if isinstance(config, Config) else config
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def to_data(config: Config) -> YamlMap:
    """The config as a plain mapping of the keys that were set (what `dump_config` writes)."""
    return config.model_dump(mode="json", exclude_unset=True)


# ---------------------------------------------------------------- internals


def _build(source: YamlSource, overrides: list[str] | tuple[str, ...]) -> tuple[Config | None, list[Problem]]:
    problems: list[Problem] = []
    data = _deep_copy(source.data)
    overridden: dict[str, str] = {}
    for item in overrides:
        _apply_override(data, item, problems, overridden)
    where = _Where(source, overridden)
    data, found, notes = config_dialects.translate(data, source)
    problems += [Problem(key, message, where(key)) for key, message in found]
    data = _expand_env(data, "", where, problems)
    if problems:
        return None, problems
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        return None, [_problem(error, where) for error in exc.errors()]
    config._notes = [f"{where(key)}: {text}" for key, text in notes]  # noqa: SLF001 - private attribute, own module
    problems = [Problem(key, message, where(key)) for key, message in mode_requirements(config)]
    return config, problems


@dataclass(frozen=True)
class _Where:
    """Where a key was set: the override that set it (`command line: override 'k=v'`), else `file:line`."""

    source: YamlSource
    overridden: dict[str, str]

    def __call__(self, key: str) -> str:
        for target, item in self.overridden.items():
            if key == target or key.startswith(target + ".") or target.startswith(key + "."):
                return f"command line: override {_show(item)}"
        return self.source.where(key)


def _show(text: str, limit: int = 80) -> str:
    return repr(shorten(text, limit))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, key: str, where: _Where, problems: list[Problem]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{key}.{k}" if key else k, where, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, key, where, problems) for v in value]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(Problem(key, f"environment variable {name} is not set", where(key)))
                return match.group(0)
            return os.environ[name]

        return _ENV.sub(substitute, value)
    return value


def _apply_override(data: YamlMap, item: str, problems: list[Problem], overridden: dict[str, str]) -> None:
    key, sep, text = item.partition("=")
    key = key.strip().lstrip("+")
    parts = key.split(".")
    if not sep or not all(parts):
        problems.append(Problem("", f"override {_show(item)} must look like key.path=value", "command line"))
        return
    if len(parts) > MAX_DEPTH:
        problems.append(
            Problem(
                "",
                f"override {_show('.'.join(parts[:3]) + '...')} nests {len(parts)} keys deep (at most {MAX_DEPTH})",
                "command line",
            )
        )
        return
    try:
        value = parse_value(text) if text.strip() else None
    except ConfigError as exc:
        problems.append(Problem(key, exc.problems[0], f"command line: override {_show(item)}"))
        return
    set_key(data, key, value)
    overridden[key] = item


def _problem(error: ErrorDetails, where: _Where) -> Problem:
    loc = [str(part) for part in error["loc"] if not _is_validator_tag(part)]
    key = ".".join(loc)
    return Problem(key, _message(error, loc), where(key))


def _is_validator_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _message(error: ErrorDetails, loc: list[str] | None = None) -> str:
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
    if kind == "literal_error" and loc == ["operation_mode"]:
        return mode_message(value)
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed; allowed values: {allowed.replace(' or ', ', ')}"
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if isinstance(value, (dict, list)):
        return error["msg"]
    return f"{error['msg']} (got {_show(repr(value), 60)[1:-1]})"


def mode_message(value: Any) -> str:
    """What is wrong with an operation_mode, with a near miss, the modes run and the modes only read."""
    text = value if isinstance(value, str) else repr(value)
    near = difflib.get_close_matches(text.strip().lower(), MODES, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}? " if near else ""
    if text in MODES:
        hint = ""
    verdict = "is not run by stquant" if text in MODES else "is not an operation mode"
    return (
        f"{_show(text, 40)} {verdict}; {hint}stquant runs: {', '.join(RUNNABLE_MODES)} "
        f"(model zoo modes read but not run: {', '.join(READ_ONLY_MODES)})"
    )


def _full_annotation(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    if info.metadata:
        return Annotated[(info.annotation, *info.metadata)]
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
