"""`stquant compare`: variants from one decode and one statistics pass, equal to separate runs; errors; protocol."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.run.compare import recommend
from engine.run.comparison import Comparison, Variant
from tests.conftest import DEMO, ROOT
from tests.interrupts import interrupt_in_process, stage_is
from tests.test_cli_errors import assert_one_error, demo_config, run_cli, write

VARY = [
    "--vary",
    "quantization.granularity=per_channel,per_tensor",
    "--vary",
    "quantization.quantization_input_type=uint8,int8",
]


def _compare(capsys, config, *extra):
    code, out, err = run_cli(capsys, "compare", config, *VARY, "--progress", "none", *extra)
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    data = json.loads((run_dir / "comparison.json").read_text())
    assert Comparison.model_validate(data).model_dump(mode="json") == data
    return data, out, run_dir


def test_table_equals_separate_runs_of_each_variant(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path, dataset__test_path=str(DEMO / "digits")))
    comparison, out, run_dir = _compare(capsys, config, "--board", "STM32H747I-DISCO")
    assert comparison["status"] == "ok" and comparison["evaluation_set"] == "test_set"
    assert comparison["evaluation_images"] == 300 and comparison["calibration_images"] == 120
    variants = comparison["variants"]
    assert [v["name"] for v in variants] == [
        "granularity=per_channel, quantization_input_type=uint8",
        "granularity=per_channel, quantization_input_type=int8",
        "granularity=per_tensor, quantization_input_type=uint8",
        "granularity=per_tensor, quantization_input_type=int8",
    ]
    assert [v["statistics"] for v in variants] == ["computed", "cache", "cache", "cache"]  # one statistics pass
    for variant in variants:
        overrides = [f"{key}={value}" for key, value in variant["settings"].items()]
        code, run_out, err = run_cli(
            capsys,
            "run",
            config,
            "operation_mode=chain_eqe",
            *overrides,
            "--progress",
            "none",
            "--no-cache",
            "benchmarking.board=STM32H747I-DISCO",
        )
        assert code == 0, err
        summary = json.loads((Path(run_out.strip().splitlines()[-1]) / "run_summary.json").read_text())
        accuracy, footprint = summary["accuracy"], summary["footprint"]
        assert (variant["accuracy"], variant["agreement"]) == (accuracy["quantized"], accuracy["agreement"]), variant
        assert comparison["float_accuracy"] == accuracy["float"]
        assert (variant["weights_flash_kib"], variant["activation_ram_kib"], variant["estimated_inference_ms"]) == (
            footprint["weights_flash_kib"],
            footprint["activation_ram_kib"],
            footprint["estimated_inference_ms"],
        )
        assert variant["estimated_inference_ms"] > 0
        assert Path(variant["quantized_model"]).read_bytes() == Path(summary["quantized_model"]).read_bytes()
    assert comparison["recommended"] is not None and "recommended: variant" in out
    markdown = (run_dir / "comparison.md").read_text()
    assert markdown.count("\n| ") == 5 and "granularity=per_tensor, quantization_input_type=int8" in markdown


def test_without_test_path_measures_on_the_validation_split_of_training_path(tmp_path, capsys):
    config = demo_config(tmp_path, dataset__training_path=str(DEMO / "digits"))  # as stquant run would (chain_eqe)
    comparison, out, _ = _compare(capsys, write(tmp_path, config), "--target-agreement", "100")
    assert comparison["evaluation_set"] == "validation_set"
    assert comparison["evaluation_images"] == 60  # the default validation_split, 0.2
    assert "60 images of the validation split of dataset.training_path" in out
    assert all(v["meets_target"] is (v["agreement"] >= 100) for v in comparison["variants"])


def test_variants_that_differ_only_in_input_type_share_the_optimized_model(tmp_path, capsys):
    """per_tensor + optimize: the second variant reuses the first's optimized model and statistics, and its
    model is byte-identical to a separate run's."""
    config = write(tmp_path, demo_config(tmp_path, quantization__granularity="per_tensor", quantization__optimize=True))
    code, out, err = run_cli(
        capsys,
        "compare",
        config,
        "--vary",
        "quantization.quantization_input_type=uint8,int8",
        "--no-cache",
        "--progress",
        "none",
    )
    assert code == 0, err
    variants = json.loads((Path(out.strip().splitlines()[-1]) / "comparison.json").read_text())["variants"]
    assert [v["statistics"] for v in variants] == ["computed", "cache"]
    code, run_out, err = run_cli(
        capsys, "run", config, "quantization.quantization_input_type=int8", "--progress", "none", "--no-cache"
    )
    assert code == 0, err
    summary = json.loads((Path(run_out.strip().splitlines()[-1]) / "run_summary.json").read_text())
    assert summary["optimization"]["pairs_equalized"]
    assert Path(variants[1]["quantized_model"]).read_bytes() == Path(summary["quantized_model"]).read_bytes()


def test_calibration_methods_on_the_tflite_route_share_one_histogram_pass(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path, dataset__test_path=str(DEMO / "digits")))
    methods = "quantization.calibration_method=minmax,percentile,entropy,mse"
    code, out, err = run_cli(capsys, "compare", config, "--vary", methods, "--progress", "none")
    assert code == 0, err
    variants = json.loads((Path(out.strip().splitlines()[-1]) / "comparison.json").read_text())["variants"]
    names = [f"calibration_method={m}" for m in ("minmax", "percentile", "entropy", "mse")]
    assert [v["name"] for v in variants] == names
    assert [v["status"] for v in variants] == ["ok"] * 4 and all(v["agreement"] is not None for v in variants)
    assert [v["statistics"] for v in variants] == ["computed", "computed", "cache", "cache"]  # histograms once
    assert len({Path(v["quantized_model"]).read_bytes() for v in variants}) > 1


def test_jsonl_events_per_variant(tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "compare",
        write(tmp_path, demo_config(tmp_path)),
        "--vary",
        "quantization.granularity=per_channel,per_tensor",
        "--progress",
        "jsonl",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    events = [json.loads(line) for line in lines[:-1]]
    variants = [Variant.model_validate(e["variant"]) for e in events if e["event"] == "variant"]
    assert [v.index for v in variants] == [0, 1] and all(v.status == "ok" for v in variants)
    final = events[-1]
    assert final["event"] == "comparison"
    assert Comparison.model_validate(final["comparison"]).run_dir == lines[-1]


@pytest.mark.parametrize(
    ("vary", "fragment"),
    [
        ("dataset.seed=1,2", "--vary dataset.seed: not a key a variant may vary"),
        ("quantization.granularity", "--vary quantization.granularity: expected KEY=V1,V2"),
        ("quantization.granularity=per_channel,per_layer", "quantization.granularity"),
    ],
)
def test_bad_vary_is_exit_2_naming_the_key(tmp_path, capsys, vary, fragment):
    assert_one_error(capsys, ["compare", write(tmp_path, demo_config(tmp_path)), "--vary", vary], 2, fragment)


def test_unknown_board_and_missing_config(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path))
    assert_one_error(capsys, ["compare", config, *VARY, "--board", "NOPE"], 2, "--board: unknown board 'NOPE'")
    assert_one_error(capsys, ["compare", str(tmp_path / "missing.yaml"), *VARY], 3, "missing.yaml")


def test_schema_of_the_comparison(capsys):
    code, out, _ = run_cli(capsys, "schema", "comparison")
    schema = json.loads(out)
    assert code == 0 and schema == Comparison.model_json_schema()
    assert "percent" in schema["$defs"]["Variant"]["properties"]["agreement"]["description"]


def _variant(index, agreement, ram, flash, ms=None):
    return Variant(
        index=index,
        name=str(index),
        settings={},
        status="ok",
        agreement=agreement,
        meets_target=agreement >= 99,
        activation_ram_kib=ram,
        weights_flash_kib=flash,
        estimated_inference_ms=ms,
    )


def test_recommendation_order():
    comparison = Comparison(
        run_dir="r",
        model="m",
        varied={},
        target_agreement=99.0,
        variants=[
            _variant(0, 99.5, 240, 400, 30),
            _variant(1, 98.0, 120, 300),
            _variant(2, 99.2, 240, 390, 31),
            _variant(3, 99.9, 240, 390, 29),
        ],
    )
    recommend(comparison)
    assert comparison.recommended == 3  # variant 1 misses the target; then RAM, flash, time
    comparison.target_agreement = 100.0
    for v in comparison.variants:
        v.meets_target = False
    recommend(comparison)
    assert comparison.recommended is None and "best is variant 3" in comparison.recommendation


# signal, stage at which it is sent, stages at which it may land (the next starts before the signal arrives)
COMPARE_INTERRUPTS = [
    (signal.SIGTERM, "load_model", ("load_model", "decode_images", "variant_0")),
    (signal.SIGINT, "variant_1", ("variant_1", "evaluate_variant_1", "variant_2")),
]


@pytest.mark.parametrize(
    ("number", "stage", "landed"), COMPARE_INTERRUPTS, ids=[f"{n.name}-{s}" for n, s, _ in COMPARE_INTERRUPTS]
)
def test_interrupted_compare_writes_its_comparison_and_exits_130(tmp_path, number, stage, landed):
    """SIGTERM is sent to a child process, as `kill` would; SIGINT to a compare in this process."""
    run_dir = tmp_path / "compare"
    argv = ["compare", write(tmp_path, demo_config(tmp_path)), *VARY, "--progress", "jsonl", "--output-dir", run_dir]
    if number == signal.SIGINT:
        code, out, err = interrupt_in_process(argv, stage_is(stage), number)
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for line in proc.stdout:
            if stage_is(stage)(line):
                proc.send_signal(number)
                break
        out, err = proc.communicate(timeout=180)
        code = proc.returncode
    assert code == 130, err
    assert err.strip().splitlines() == ["stquant: interrupted: no partial model was kept"]
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1] == {"event": "error", "message": "interrupted: no partial model was kept", "exit_code": 130}
    written = json.loads((run_dir / "comparison.json").read_text())
    assert events[-2] == {"event": "comparison", "comparison": written}
    assert written["status"] == "interrupted" and written["error"] == "interrupted: no partial model was kept"
    assert written["failed_stage"] in landed, written["failed_stage"]
    assert len(written["variants"]) < 4 and (run_dir / "comparison.md").exists()
    assert not list(run_dir.rglob("*.part"))
