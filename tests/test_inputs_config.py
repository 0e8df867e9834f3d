"""Every config input ends in a ConfigError naming its key (or a documented value): bounded expressions,
finite numbers, ranges that later stages need, path text, overrides, YAML limits, and `Plan.warnings`."""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml
from PIL import Image

from engine.common.errors import ConfigError, InputError
from engine.config.expressions import MAX_DEPTH, MAX_DIGITS, ExpressionError, evaluate
from engine.config.schema import (
    KERAS_MAX_OPSET,
    OPSET_MIN,
    READ_ONLY_MODES,
    RUNNABLE_MODES,
    load_config,
    validate_field,
)
from engine.config.yaml_source import MAX_BYTES, MAX_VALUES, parse_yaml, read_yaml
from engine.run.preflight import prepare
from tests.conftest import DEMO
from tests.test_config import TUTORIAL, errors_of


def one_error(text: str, overrides=()) -> str:
    (problem,) = errors_of(text, overrides)
    return problem


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("(1e300)**2", "number too large"),
        ("((10**64)**64)**64", "number too large"),
        ("9**9**9**9**9", "number too large"),
        ("2**400", "number too large"),
        ("1e300*1e300", "number too large"),
        ("1e400", "not a finite number"),
        ("(-8)**0.5", "not a real number"),
        ("(1, 2) * 10**8", "arithmetic on a tuple"),
        ("-(" * 30 + "1" + ")" * 30, "nested too deeply"),
        ("1+" * 150 + "1", "expression too long"),
        ("a\0b", "not a number"),
        ("inf", "not a number"),
    ],
)
def test_expressions_are_bounded(text, reason):
    with pytest.raises(ExpressionError, match=reason):
        evaluate(text)


def test_expressions_within_bounds():
    assert evaluate("10**99") == 10**99
    assert evaluate("2**-2000") == 0.0
    assert evaluate("-" * MAX_DEPTH + "1") == 1
    assert len(str(evaluate(f"10**{MAX_DIGITS - 1}"))) == MAX_DIGITS


@pytest.mark.parametrize(
    "value", ["'(1e300)**2'", "'((10**64)**64)**64'", ".inf", "-.inf", ".nan", "'inf'", "'nan'", "'1e400'", "1.0e+400"]
)
def test_non_finite_numbers_are_refused_with_their_key(value):
    problem = one_error(TUTORIAL.replace("scale: 1/127.5", f"scale: {value}"))
    assert problem.startswith("cfg.yaml:11: preprocessing.rescaling.scale: ")


def test_wizard_field_check_never_raises():
    assert "number too large" in validate_field("preprocessing.rescaling.scale", "(1e300)**2")
    assert "finite" in validate_field("preprocessing.rescaling.scale", float("nan"))


# ---------------------------------------------------------------- ranges later stages need


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dataset.seed", -1, "greater than or equal to 0"),
        ("dataset.seed", 2**32, "less than or equal to 4294967295"),
        ("general.global_seed", -5, "greater than or equal to 0"),
        ("general.num_threads_tflite", 0, "greater than or equal to 1"),
        ("general.gpu_memory_limit", -1, "greater than 0"),
        ("quantization.target_opset", OPSET_MIN - 1, f"greater than or equal to {OPSET_MIN}"),
        ("dataset.validation_split", ".nan", "finite"),
        ("dataset.class_names", "[a, b, a]", "class 'a' listed more than once"),
        ("quantization.export_dir", "/tmp/models", "must be a folder inside the run folder"),
        ("quantization.export_dir", "../models", "must be a folder inside the run folder"),
    ],
)
def test_values_that_would_fail_later_are_refused_up_front(key, value, message):
    problem = one_error(TUTORIAL, [f"{key}={value}"])
    assert problem.startswith(f"command line: override '{key}={value}': {key}: ") and message in problem


def test_seed_range_is_what_numpy_accepts():
    import numpy as np

    np.random.RandomState(2**32 - 1)
    with pytest.raises(ValueError, match="Seed must be between 0"):
        np.random.RandomState(2**32)
    with pytest.raises(ValueError, match="Seed must be between 0"):
        np.random.RandomState(-1)


def test_keras_opset_limit_is_tf2onnx_s():
    """Read from tf2onnx's constants module without importing tf2onnx (which imports TensorFlow)."""
    spec = importlib.util.find_spec("tf2onnx")
    if spec is None:
        pytest.skip("tf2onnx not installed")
    tree = ast.parse((Path(spec.origin).parent / "constants.py").read_text())
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OPSET_TO_IR_VERSION"
    )
    assert max(ast.literal_eval(table)) == KERAS_MAX_OPSET


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a" * 5000, "path too long (5000 bytes"),
        ("x/" + "b" * 300 + "/y", "a file or folder name in this path is too long (300 bytes"),
        ("a\0b", "contains a NUL character"),
        ("\ud800/model.h5", "invalid Unicode"),
        ("~nosuchuser_stquant/m.h5", "no user named 'nosuchuser_stquant'"),
    ],
)
def test_path_text_is_checked_with_its_key(value, message):
    for key in (
        "general.model_path",
        "dataset.quantization_path",
        "quantization.export_dir",
        "hydra.run.dir",
        "mlflow.uri",
    ):
        problem = one_error(TUTORIAL, [f"{key}={value}"])
        assert problem.startswith(f"command line: override {f'{key}={value}'[:77]!r}"[:60]), problem
        assert f"{key}: " in problem and message in problem, problem


def test_run_dir_time_format_is_checked():
    problem = one_error(TUTORIAL.replace("${now:%Y_%m_%d_%H_%M_%S}", "${now:%Y" + "%Y" * 2000 + "}"))
    assert "hydra.run.dir: path too long" in problem


# ---------------------------------------------------------------- overrides and modes


def test_override_errors_name_the_override():
    problem = one_error(TUTORIAL, ["dataset.seed=x"])
    assert problem == (
        "command line: override 'dataset.seed=x': dataset.seed: not a number or arithmetic expression "
        "(only numbers and + - * / ** allowed): 'x'"
    )
    assert one_error(TUTORIAL, ["a..b=1"]) == "command line: override 'a..b=1' must look like key.path=value"
    assert "alias refers to itself" in one_error(TUTORIAL, ["x=&a [*a]"])
    assert "must look like" in one_error(TUTORIAL, ["x" * 500])
    assert len(one_error(TUTORIAL, ["x" * 500])) < 200


def test_mode_typo_gets_a_suggestion_and_both_lists():
    problem = one_error(TUTORIAL.replace("operation_mode: quantization", "operation_mode: quantizaton"))
    assert problem.startswith(
        "cfg.yaml:3: operation_mode: 'quantizaton' is not an operation mode; did you mean quantization? stquant runs: "
    )
    assert (
        f"stquant runs: {', '.join(RUNNABLE_MODES)} (model zoo modes read but not run: "
        f"{', '.join(READ_ONLY_MODES)})" in problem
    )
    assert "did you mean chain_eqe?" in one_error(
        TUTORIAL.replace("operation_mode: quantization", "operation_mode: chain_eq")
    )


# ---------------------------------------------------------------- YAML limits


def test_alias_bomb_is_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    with pytest.raises(ConfigError, match=f"cfg.yaml: YAML expands to more than {MAX_VALUES} values"):
        parse_yaml(bomb, "cfg.yaml")


def test_recursive_alias_and_deep_nesting_are_refused():
    with pytest.raises(ConfigError, match=r"cfg.yaml:1: YAML alias refers to itself"):
        parse_yaml("general: &g {x: *g}\n", "cfg.yaml")
    with pytest.raises(ConfigError, match=r"cfg.yaml.*nest"):
        parse_yaml("a: " + "[" * 60 + "]" * 60, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"cfg.yaml"):
        parse_yaml("a: " + "[" * 5000 + "]" * 5000, "cfg.yaml")


def test_python_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match=r"cfg.yaml:1: YAML syntax error"):
        parse_yaml(f"x: !!python/object/apply:os.system ['touch {marker}']\n", "cfg.yaml")
    assert not marker.exists()


def test_config_file_bytes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"general:\n  project_name: a\xffb\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: not UTF-8 text \(byte 0xff\)"):
        read_yaml(path)
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml(path)
    with pytest.raises(InputError, match="is a folder, not a config file"):
        read_yaml(tmp_path)
    with pytest.raises(InputError, match="cannot read config file"):
        read_yaml(tmp_path / ("n" * 300))


# ---------------------------------------------------------------- Plan.warnings


def _dataset(root: Path, empty=("digit_9",), extra=("weeds",)) -> Path:
    for k in range(10):
        (root / f"digit_{k}").mkdir(parents=True)
        if f"digit_{k}" not in empty:
            Image.new("RGB", (8, 8), (k * 20, 0, 0)).save(root / f"digit_{k}" / "a.png")
    for name in extra:
        (root / name).mkdir()
    (root / "digit_0" / "notes.txt").write_text("x")
    return root


def _config(tmp_path: Path, **sections) -> Path:
    data = yaml.safe_load((DEMO.parent / "quantization_config.yaml").read_text())
    data["general"]["model_path"] = str(DEMO / "digits_cnn.h5")
    data["dataset"]["quantization_path"] = str(tmp_path / "data")
    for key, value in sections.items():
        section, _, name = key.partition("__")
        data.setdefault(section, {})[name] = value
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_plan_warnings_hold_each_line_once(tmp_path):
    root = _dataset(tmp_path / "data")
    config = load_config(
        _config(
            tmp_path,
            general__global_seed=7,
            general__display_figures=False,
            evaluation__target="stedgeai_host",
            dataset__classes_file_path="classes.txt",
            dataset__test_path=str(root),
            quantization__target_opset=15,
            tools__stedgeai={"version": "10.0", "optimization": "balanced"},
            training__epochs=5,
        )
    )
    config.dataset.class_names = [f"digit_{k}" for k in range(10)]
    unused = "set but not used by stquant"
    assert prepare(config).warnings == [
        f"general.display_figures: {unused} (stquant never opens figure windows; confusion matrices are PNGs in the "
        "run folder)",
        f"general.global_seed: {unused} (stquant's only randomness (shuffle, random calibration) is seeded by "
        "dataset.seed)",
        f"dataset.classes_file_path: {unused} (class names come from dataset.class_names or the class folders)",
        f"evaluation.target: {unused} (stquant evaluates on this computer (host) only)",
        f"tools.stedgeai.version: {unused} (stquant estimates the footprint itself and never calls STM32Cube.AI / "
        "STEdgeAI)",
        f"tools.stedgeai.optimization: {unused} (stquant estimates the footprint itself and never calls "
        "STM32Cube.AI / STEdgeAI)",
        f"training: {unused} (section for operation modes stquant does not run (training, prediction, deployment...))",
        f"quantization.target_opset: {unused} (used by Onnx_quantizer only)",
        f"dataset.test_path: {unused} (operation_mode quantization does not read this folder)",
        "dataset.quantization_path: folders not in dataset.class_names, ignored: weeds",
        f"dataset.quantization_path: no images in the folder of class 'digit_9' in {root}",
        f"dataset.quantization_path: skipped 1 non-image file(s) in {root}, e.g. {root / 'digit_0' / 'notes.txt'}",
    ]


def test_defaults_written_out_give_no_warning(tmp_path):
    _dataset(tmp_path / "data", empty=(), extra=())
    (tmp_path / "data" / "digit_0" / "notes.txt").unlink()
    config = load_config(
        _config(
            tmp_path,
            general__global_seed=123,
            general__display_figures=True,
            evaluation__target="host",
            quantization__target_opset=17,
        )
    )
    assert prepare(config).warnings == []


def test_same_folder_for_calibration_and_test_warns_once(tmp_path):
    root = _dataset(tmp_path / "data", extra=())
    config = load_config(
        _config(tmp_path, dataset__test_path=str(root)), ["operation_mode=chain_eqe", "dataset.quantization_split=null"]
    )
    plan = prepare(config)
    assert plan.datasets["test_path"] is plan.datasets["quantization_path"]
    assert plan.warnings == [
        f"dataset.quantization_path: no images in the folder of class 'digit_9' in {root}",
        f"dataset.quantization_path: skipped 1 non-image file(s) in {root}, e.g. {root / 'digit_0' / 'notes.txt'}",
        "dataset.test_path: 9 of its 9 images are also calibration images "
        "(dataset.quantization_path); accuracy on them is optimistic",
    ]


def test_validation_split_leaving_no_image_is_found_before_the_run(tmp_path):
    root = _dataset(tmp_path / "data", empty=(), extra=())
    config = load_config(
        _config(tmp_path, dataset__training_path=str(root)),
        [
            "operation_mode=evaluation",
            "dataset.quantization_path=null",
            "dataset.validation_split=0.05",
            "dataset.quantization_split=null",
            "quantization=null",
        ],
    )
    with pytest.raises(ConfigError, match=r"dataset.validation_split: 0.05 of 10 images leaves no image"):
        prepare(config)


def test_model_path_outcomes(tmp_path):
    _dataset(tmp_path / "data")
    folder = tmp_path / "model.h5"
    folder.mkdir()
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    for value, error, message in [
        (str(folder), InputError, "general.model_path: .*model.h5 is a folder; expected a model file"),
        (str(tmp_path / "missing.h5"), InputError, "general.model_path: model file not found"),
        (
            str(tmp_path / "data" / "digit_0" / "a.png" / "m.h5"),
            InputError,
            "general.model_path: cannot read the model file",
        ),
        (str(damaged), InputError, "damaged.h5"),
    ]:
        config = load_config(_config(tmp_path), [f"general.model_path={value}"])
        with pytest.raises(error, match=message):
            prepare(config)


def test_dialect_notes_are_plan_warnings(tmp_path):
    _dataset(tmp_path / "data", empty=(), extra=())
    (tmp_path / "data" / "digit_0" / "notes.txt").unlink()
    config = load_config(_config(tmp_path, model__model_name="mobilenet_v2", model__input_shape=[32, 32, 3]))
    assert prepare(config).warnings == config.notes and len(config.notes) == 1
    assert "model.model_name, model.input_shape: ignored" in config.notes[0]
