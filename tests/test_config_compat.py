"""Every real model-zoo config loads: null defaults, each operation mode's requirements, the v4 dialect.

Expected values come from the reference's own parser (stm32ai-modelzoo-services `common/utils/cfg_utils.py`
and `image_classification/src/utils/parse_config.py`, 3.x; the v4 `image_classification/tf/src/utils/
parse_config.py`, `common/quantization/quantization_utils.py:define_extra_options` and
`README_QUANTIZATION_TOOL.md`), quoted where a test depends on them.
"""

import copy
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.common.errors import ConfigError
from engine.config.fields import accepts_none
from engine.config.keys import get_key
from engine.config.schema import Config, check, load_config, load_config_text, validate_field
from stquant_tui.draft import Draft
from tests.conftest import DEMO, ROOT

ST_CONFIGS = ROOT.parent / "shared" / "st_configs"
ZOO_CONFIGS = ROOT / "tests" / "data" / "zoo_configs"
NOT_MAIN_SCRIPT = {"evaluation_on_target_config.yaml", "chain_qd_n6_config.yaml"}  # see ../shared/st_configs/README.md

BASE = {
    "general": {"model_path": str(DEMO / "digits_cnn.h5")},
    "operation_mode": "quantization",
    "dataset": {"class_names": [f"digit_{i}" for i in range(10)], "quantization_path": str(DEMO / "digits")},
    "preprocessing": {
        "rescaling": {"scale": "1/127.5", "offset": -1},
        "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
        "color_mode": "rgb",
    },
    "quantization": {
        "quantizer": "Onnx_quantizer",
        "quantization_type": "PTQ",
        "quantization_input_type": "float",
        "quantization_output_type": "float",
    },
}


def config_with(changes: dict | None = None, drop: tuple[str, ...] = (), **kwargs) -> dict:
    """BASE with dotted keys set (a value of ... removes the key)."""
    data = copy.deepcopy(BASE)
    for key, value in {**(changes or {}), **{k.replace("__", "."): v for k, v in kwargs.items()}}.items():
        *parents, last = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    for key in drop:
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(last)
    return data


def load(data: dict):
    return load_config_text(yaml.safe_dump(data, sort_keys=False), "cfg.yaml")


def errors(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(data)
    return info.value.problems


def cli(capsys, path) -> tuple[int, str]:
    code = main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


# ---------------------------------------------------------------- the shared corpus of real configs


def _st_configs() -> list[Path]:
    return sorted(ST_CONFIGS.rglob("*.yaml")) if ST_CONFIGS.is_dir() else []


@pytest.mark.parametrize(
    "path", _st_configs() or [None], ids=lambda p: f"{p.parent.parent.parent.parent.name}/{p.name}" if p else "absent"
)
def test_every_services_config_validates_or_names_its_mode(path, capsys):
    if path is None:
        pytest.skip(f"the services' configs are not at {ST_CONFIGS} (see ../shared/st_configs/README.md)")
    if path.name in NOT_MAIN_SCRIPT:
        pytest.skip("not a config of the main script (../shared/st_configs/README.md)")
    mode = yaml.safe_load(path.read_text())["operation_mode"]
    code, err = cli(capsys, path)
    if mode in ("quantization", "evaluation", "benchmarking", "chain_eqe", "chain_qb", "chain_eqeb"):
        assert code in (0, 3), err  # 3: the model and folders of the reference's own tree are not here
    else:
        assert code == 2 and err.splitlines() == [
            f"stquant: operation_mode: {mode!r} is not run by stquant; "
            "stquant runs: quantization, evaluation, benchmarking, chain_eqe, "
            "chain_qb, chain_eqeb (model zoo modes read but not run: training, "
            "prediction, deployment, chain_tqeb, chain_tqe, chain_qd, "
            "chain_tbqeb)"
        ], err
    assert Draft.load(path).problems() == []


# ---------------------------------------------------------------- real v4 configs (tests/data/zoo_configs)


def test_v4_w4w8a8_config_refuses_the_mixed_precision_search(capsys):
    code, err = cli(capsys, ZOO_CONFIGS / "efficientnetv2b0_224_w4w8a8_config.yaml")
    assert code == 2
    first, *missing = err.splitlines()
    assert first == (
        f"stquant: {ZOO_CONFIGS / 'efficientnetv2b0_224_w4w8a8_config.yaml'}:28: quantization.operating_mode: "
        "full_auto (the reference's mixed-precision search of which weights can go to 4 bits) is not supported; "
        "stquant quantizes every weight to int8: remove operating_mode for a plain W8A8 quantization"
    )
    assert [line.split(": ")[1] for line in missing] == ["general.model_path", "dataset.quantization_path"]
    assert all(" not found: " in line for line in missing)  # the reference's own files, in the same pass


def test_v4_w4w8a8_config_without_the_search_is_a_plain_int8_quantization():
    text = (ZOO_CONFIGS / "efficientnetv2b0_224_w4w8a8_config.yaml").read_text()
    config = load_config_text(text.replace("  operating_mode: full_auto\n", ""), "w4w8a8.yaml")
    assert config.general.model_path.endswith("efficientnetv2b0_224_fft.keras")
    assert config.general.project_name == "<unnamed>"  # `project_name: null`
    assert config.dataset.name == "food101"
    assert config.quantization.extra_options == "calib_moving_average"  # onnx_extra_options.CalibMovingAverage
    assert config.quantization.target_opset == 21
    assert config.notes == [
        "w4w8a8.yaml:43: quantization.iterative_quant_parameters: ignored (used only by the "
        "reference's inspection and full_auto search)"
    ]


def test_pytorch_config_is_one_message(capsys):
    code, err = cli(capsys, ZOO_CONFIGS / "darknettiny_pt_224_onnx_config.yaml")
    assert code == 2
    (line,) = err.splitlines()
    assert ":9: model.framework: PyTorch models are not supported (framework: torch)" in line


def test_v4_model_name_without_model_file_says_what_is_missing(capsys):
    code, err = cli(capsys, ZOO_CONFIGS / "efficientnetv2b0_224_config_onnx.yaml")
    assert code == 2
    line, *missing = err.splitlines()
    assert [line.split(": ")[1] for line in missing] == ["dataset.quantization_path", "dataset.test_path"]
    assert all(": dataset folder not found: " in line for line in missing)  # the reference's own folders
    assert line.endswith(
        ":12: model.model_path: required for operation_mode chain_eqeb: model.model_name "
        "'efficientnetv2b0' names a model the reference builds (and downloads weights for); "
        "stquant needs the model file (model.model_path)"
    )


def test_v4_training_config_loads_and_names_its_mode(capsys):
    path = ZOO_CONFIGS / "resnet8_32_tfs_config.yaml"
    config = load_config(path)
    assert config.dataset.validation_split == 0.2  # `validation_split: null`
    assert config.notes == [
        f"{path}:12: model.model_name, model.input_shape, model.pretrained: ignored (they "
        "describe a model for the reference to build or train; stquant quantizes the model file)"
    ]
    code, err = cli(capsys, path)
    assert code == 2 and "operation_mode: 'chain_tqeb' is not run by stquant" in err
    assert Draft.load(path).problems() == []


# ---------------------------------------------------------------- null means the reference's default

# (key, default) for every key the reference fills in when it is null or absent:
# parse_general_section: `if not cfg.project_name: cfg.project_name = "<unnamed>"`, logs_dir, saved_models_dir,
# `deterministic_ops ... if ... is not None else False`, `display_figures ... else True`,
# `if not cfg.global_seed or cfg.global_seed == 'None': cfg.global_seed = 123`, `num_threads_tflite = 1`;
# parse_dataset_section: name "<unnamed>", `validation_split = 0.2`, check_image_files False, `seed ... else 123`;
# parse_quantization_section: export_dir, granularity, optimize, target_opset; parse_evaluation_section:
# gen_npy_input/output False, target "host" (npy names: the evaluation's own defaults).
NULL_DEFAULTS = [
    ("general.project_name", "<unnamed>"),
    ("general.logs_dir", "logs"),
    ("general.saved_models_dir", "saved_models"),
    ("general.deterministic_ops", False),
    ("general.display_figures", True),
    ("general.global_seed", 123),
    ("general.num_threads_tflite", 1),
    ("dataset.name", "<unnamed>"),
    ("dataset.validation_split", 0.2),
    ("dataset.check_image_files", False),
    ("dataset.seed", 123),
    ("quantization.export_dir", "quantized_models"),
    ("quantization.granularity", "per_channel"),
    ("quantization.optimize", False),
    ("quantization.target_opset", 17),
    ("evaluation.gen_npy_input", False),
    ("evaluation.gen_npy_output", False),
    ("evaluation.target", "host"),
    ("evaluation.npy_in_name", "unknown_npy_input"),
    ("evaluation.npy_out_name", "unknown_npy_output"),
    ("preprocessing.resizing.interpolation", "bilinear"),
    ("mlflow.uri", "./experiments_outputs/mlruns"),
]


def _value(config, key):
    for part in key.split("."):
        config = getattr(config, part)
    return config


@pytest.mark.parametrize("written", [None, "None", ""], ids=["null", "None", "blank"])
@pytest.mark.parametrize(("key", "default"), NULL_DEFAULTS, ids=[k for k, _ in NULL_DEFAULTS])
def test_null_means_the_reference_default(key, default, written):
    assert _value(load(config_with({key: written})), key) == default
    assert _value(load(config_with(drop=(key,)) if _has(key) else BASE), key) == default
    assert validate_field(key, written) is None and accepts_none(key)  # the wizard may leave it blank


def _has(key: str) -> bool:
    missing = object()
    return get_key(BASE, key, missing) is not missing


def test_explicit_values_still_win_and_are_checked():
    config = load(config_with({"dataset.seed": 0, "dataset.validation_split": 0.3, "general.display_figures": False}))
    assert (config.dataset.seed, config.dataset.validation_split, config.general.display_figures) == (0, 0.3, False)
    (problem,) = errors(config_with({"dataset.validation_split": 1.5}))
    assert "dataset.validation_split: Input should be less than 1" in problem


def test_blank_class_names_means_infer_them():
    assert load(config_with({"dataset.class_names": ""})).dataset.class_names is None  # `if cfg.class_names:`


@pytest.mark.parametrize("section", ["general", "dataset", "evaluation", "benchmarking", "mlflow", "hydra"])
def test_blank_section_means_its_defaults(section):
    data = config_with({section: None})
    if section == "general":
        assert errors(data) == ["cfg.yaml:1: general.model_path: required for operation_mode quantization"]
    else:
        assert load(data).model_dump()[section] == Config().model_dump()[section]


def test_blank_dataset_in_quantization_mode_is_random_calibration():
    config = load(config_with({"dataset": None}))  # get_config: `if not cfg.dataset: cfg.dataset = {}`
    assert config.dataset.quantization_path is None and config.dataset.training_path is None


# ---------------------------------------------------------------- per-mode requirements (parse_top_level)


def test_deployment_without_rescaling_is_reported_as_a_mode_not_run(tmp_path, capsys):
    data = config_with({"operation_mode": "deployment"}, drop=("preprocessing.rescaling", "quantization"))
    assert check(data) == []  # parse_preprocessing_section: deployment requires only resizing and color_mode
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(data))
    code, err = cli(capsys, path)
    assert code == 2 and err.startswith("stquant: operation_mode: 'deployment' is not run by stquant")


@pytest.mark.parametrize("mode", ["quantization", "evaluation", "chain_eqe", "chain_qb", "chain_eqeb"])
def test_modes_run_need_rescaling(mode):
    data = config_with(
        {"operation_mode": mode, "dataset.test_path": str(DEMO / "digits")}, drop=("preprocessing.rescaling",)
    )
    assert f"preprocessing.rescaling: required for operation_mode {mode} (scale and offset)" in " ".join(
        str(p) for p in check(data)
    )


def test_benchmarking_needs_no_preprocessing_nor_dataset():
    data = config_with(
        {"operation_mode": "benchmarking", "general.model_path": "m.tflite"},
        drop=("preprocessing", "dataset", "quantization"),
    )
    assert check(data) == []  # parse_top_level: preprocessing unless benchmarking; dataset not for benchmarking


@pytest.mark.parametrize("mode", ["quantization", "chain_qb"])
def test_quantization_and_chain_qb_need_no_dataset(mode):
    assert check(config_with({"operation_mode": mode}, drop=("dataset",))) == []


@pytest.mark.parametrize("mode", ["evaluation", "chain_eqe", "chain_eqeb"])
def test_evaluation_group_needs_a_test_validation_or_training_folder(mode):
    (problem,) = check(config_with({"operation_mode": mode}))  # quantization_path does not count
    assert (
        problem.key == "dataset.test_path"
        and "needs one of test_path, validation_path, training_path" in problem.message
    )


@pytest.mark.parametrize("mode", ["quantization", "chain_eqe", "chain_qb", "chain_eqeb"])
def test_quantization_group_needs_the_quantization_section(mode):
    data = config_with({"operation_mode": mode, "dataset.test_path": "t"}, drop=("quantization",))
    assert [p.key for p in check(data)] == ["quantization"]


@pytest.mark.parametrize(
    "mode", ["training", "prediction", "deployment", "chain_tqe", "chain_tqeb", "chain_qd", "chain_tbqeb"]
)
def test_modes_not_run_are_not_held_to_run_requirements(mode):
    data = config_with(
        {"operation_mode": mode, "general.model_path": "model.tflite"},
        drop=("preprocessing", "quantization", "dataset"),
    )
    assert check(data) == []


# ---------------------------------------------------------------- v4 dialect: mapped


def test_v4_model_path_conflict_is_named():
    (problem,) = errors(config_with({"model.model_path": "other.h5"}))
    assert problem.endswith(": model.model_path: conflicts with general.model_path; keep only one")


def test_v4_null_model_path_leaves_general_model_path():
    assert load(config_with({"model.model_path": None})).general.model_path == BASE["general"]["model_path"]


@pytest.mark.parametrize(
    ("moving", "expected"),
    [(True, "calib_moving_average"), (False, None), ("True", "calib_moving_average"), ("False", None)],
)
def test_v4_calib_moving_average(moving, expected):
    config = load(config_with({"quantization.onnx_extra_options": {"CalibMovingAverage": moving}}))
    assert config.quantization.extra_options == expected and config.notes == []


def test_v4_options_equal_to_what_stquant_does_are_accepted_silently():
    config = load(
        config_with(
            {
                "quantization.onnx_extra_options": {
                    "WeightSymmetric": "True",
                    "ActivationSymmetric": False,
                    "QuantizeBias": True,
                    "SmoothQuant": "None",
                    "weights_tensor_override": None,
                    "activations_tensor_override": None,
                },
                "quantization.onnx_quant_parameters": {
                    "weightType": "Int8",
                    "activType": "Int8",
                    "nodes_to_exclude": None,
                },
                "quantization.operating_mode": "default",
                "model.framework": "tf",
            }
        )
    )
    assert config.notes == [] and config.quantization.calibration_method == "minmax"


@pytest.mark.parametrize(("given", "expected"), [("MinMax", "minmax"), ("Entropy", "entropy")])
def test_v4_calibrate_method_maps_to_calibration_method(given, expected):
    config = load(config_with({"quantization.onnx_quant_parameters": {"calibrate_method": given}}))
    assert config.quantization.calibration_method == expected


def test_v4_calibrate_method_conflict():
    (problem,) = errors(
        config_with(
            {
                "quantization.onnx_quant_parameters": {"calibrate_method": "Entropy"},
                "quantization.calibration_method": "minmax",
            }
        )
    )
    assert "onnx_quant_parameters.calibrate_method: conflicts with quantization.calibration_method" in problem


def test_v4_scalar_normalization_is_folded_into_rescaling():
    # tf `preprocess.py`: Rescaling(scale, offset) then Normalization(mean, variance=std**2): (x*s+o-mean)/std
    config = load(
        config_with(
            {
                "preprocessing.rescaling": {"scale": "1/255", "offset": 0},
                "preprocessing.normalization": {"mean": [0.5, 0.5, 0.5], "std": 0.25},
            }
        )
    )
    assert config.preprocessing.rescaling.scale == pytest.approx(4 / 255)
    assert config.preprocessing.rescaling.offset == pytest.approx(-2.0)


# ---------------------------------------------------------------- v4 dialect: ignored with a note


def test_v4_ignored_keys_give_one_note_per_reason():
    config = load(
        config_with(
            {
                "model.model_name": "resnet32",
                "model.depth": 32,
                "model.input_shape": "(32, 32, 3)",
                "general.device": "cuda:0",
                "dataset.num_classes": 10,
                "evaluation.profile": "profile_O3",
                "evaluation.input_chpos": "chlast",
                "quantization.operating_mode": "inspection",
                "quantization.onnx_extra_options": {"SmoothQuantAlpha": 0.1},
            }
        )
    )
    assert [note.split(": ", 1)[1] for note in config.notes] == [
        "model.model_name, model.input_shape, model.depth: ignored (they describe a model for the reference to "
        "build or train; stquant quantizes the model file)",
        "general.device: ignored (the reference's training device; stquant lets TensorFlow choose)",
        "dataset.num_classes: ignored (stquant counts the classes from class_names or the class folders)",
        "evaluation.profile, evaluation.input_chpos: ignored (settings of the reference's on-target evaluation; "
        "stquant evaluates on the host)",
        "quantization.operating_mode: ignored (inspection: stquant runs the plain quantization; its per-layer SQNR "
        "report (run_summary.json layer_errors) is the inspection)",
        "quantization.onnx_extra_options.SmoothQuantAlpha: ignored (settings of SmoothQuant, which is off)",
    ]
    assert all(note.startswith("cfg.yaml:") for note in config.notes)


# ---------------------------------------------------------------- v4 dialect: refused by name


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"quantization.operating_mode": "full_auto"}, "quantization.operating_mode", "mixed-precision search"),
        ({"quantization.operating_mode": "auto"}, "quantization.operating_mode", "'auto' is not supported"),
        (
            {"quantization.onnx_quant_parameters": {"weightType": "Int4"}},
            "onnx_quant_parameters.weightType",
            "Int4 weights are not supported",
        ),
        (
            {"quantization.onnx_quant_parameters": {"activType": "Int16"}},
            "onnx_quant_parameters.activType",
            "Int16 activations are not supported",
        ),
        (
            {"quantization.onnx_quant_parameters": {"nodes_to_exclude": ["Conv_0"]}},
            "onnx_quant_parameters.nodes_to_exclude",
            "choosing which nodes are quantized is not supported",
        ),
        (
            {"quantization.onnx_quant_parameters": {"calibrate_method": "Distribution"}},
            "onnx_quant_parameters.calibrate_method",
            "'Distribution' is not supported",
        ),
        (
            {"quantization.onnx_extra_options": {"WeightSymmetric": False}},
            "onnx_extra_options.WeightSymmetric",
            "asymmetric weights are not supported",
        ),
        (
            {"quantization.onnx_extra_options": {"ActivationSymmetric": True}},
            "onnx_extra_options.ActivationSymmetric",
            "symmetric activations are not supported",
        ),
        (
            {"quantization.onnx_extra_options": {"QuantizeBias": False}},
            "onnx_extra_options.QuantizeBias",
            "float biases are not supported",
        ),
        (
            {"quantization.onnx_extra_options": {"SmoothQuant": True}},
            "onnx_extra_options.SmoothQuant",
            "SmoothQuant (migrating activation outliers into the weights) is not supported",
        ),
        (
            {"quantization.onnx_extra_options": {"weights_tensor_override": [["w:0", {"quant_type": "Int16"}]]}},
            "onnx_extra_options.weights_tensor_override",
            "per-tensor bit widths, scales and zero points are not supported",
        ),
        ({"dataset.data_dir": "/data"}, "dataset.data_dir", "not supported"),
        ({"dataset.data_download": True}, "dataset.data_download", "not supported"),
        (
            {"preprocessing.normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
            "preprocessing.normalization",
            "per-channel mean/std is not supported",
        ),
    ],
)
def test_v4_keys_stquant_cannot_honour_are_refused_by_name(changes, key, fragment):
    (problem,) = errors(config_with(changes))
    assert f"{key}: " in problem and fragment in problem and "not supported" in problem


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"model.framework": "torch"}, "model.framework"),
        ({"model.model_path": "net.pt"}, "model.model_path"),
        ({"model.model_name": "darknettiny_pt"}, "model.model_name"),
        ({"general.workers": 4}, "general.workers"),
        ({"dataset.train_split": "train"}, "dataset.train_split"),
    ],
)
def test_pytorch_configs_get_one_message(changes, key):
    (problem,) = errors(config_with(changes))
    assert f": {key}: PyTorch models are not supported" in problem


def test_pytorch_config_with_many_pytorch_keys_is_still_one_message():
    (problem,) = errors(
        config_with(
            {
                "model.framework": "torch",
                "dataset.data_dir": "/data",
                "dataset.num_classes": 10,
                "general.workers": 4,
                "general.no_prefetcher": True,
                "dataset.val_split": "val",
            }
        )
    )
    assert ": model.framework: PyTorch models are not supported (framework: torch)" in problem


def test_v4_options_must_be_a_mapping():
    (problem,) = errors(config_with({"quantization.onnx_extra_options": "CalibMovingAverage"}))
    assert problem.endswith(
        ": quantization.onnx_extra_options: expected a mapping of options (got 'CalibMovingAverage')"
    )


def test_unknown_v4_option_suggests_and_keys_of_no_dialect_stay_unknown():
    (problem,) = errors(config_with({"quantization.onnx_extra_options": {"CalibMovingAverag": True}}))
    assert problem.endswith(
        ": quantization.onnx_extra_options.CalibMovingAverag: unknown key; did you mean CalibMovingAverage?"
    )
    (problem,) = errors(config_with({"quantization.mixed_precision": True}))
    assert "quantization.mixed_precision: unknown key" in problem


def test_overrides_reach_v4_keys():
    text = yaml.safe_dump(config_with(drop=("general",)))
    config = load_config_text(
        text,
        "cfg.yaml",
        ["model.model_path=" + str(DEMO / "digits_cnn.h5"), "quantization.onnx_extra_options.CalibMovingAverage=true"],
    )
    assert config.general.model_path.endswith("digits_cnn.h5")
    assert config.quantization.extra_options == "calib_moving_average"
