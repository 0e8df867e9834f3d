"""`stquant validate` reports every problem of a config in one pass, one line each naming its key."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.cli import main
from tests.test_cli_errors import demo_config, write


def validate(capsys, path: str) -> tuple[int, list[str]]:
    code = main(["validate", path])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def test_three_problems_give_three_lines_and_exit_2(tmp_path, capsys):
    config = demo_config(
        tmp_path,
        general__model_path=str(tmp_path / "nope.h5"),
        dataset__quantization_split=2.0,
        operation_mode="chain_eqe",
        dataset__test_path="0.4",
    )
    path = write(tmp_path, config)
    code, lines = validate(capsys, path)
    assert code == 2
    line_of_split = yaml.safe_dump(config, sort_keys=False).splitlines().index("  quantization_split: 2.0") + 1
    assert lines == [
        f"stquant: {path}:{line_of_split}: dataset.quantization_split: Input should be less than or equal to 1 (got 2.0)",
        f"stquant: general.model_path: model file not found: {tmp_path / 'nope.h5'}",
        f"stquant: dataset.test_path: dataset folder not found: {Path.cwd() / '0.4'}",
    ]


def test_missing_inputs_alone_are_all_listed_with_exit_3(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    config = demo_config(
        tmp_path,
        general__model_path=str(tmp_path / "nope.h5"),
        operation_mode="chain_eqe",
        dataset__test_path=str(tmp_path / "a_file"),
    )
    code, lines = validate(capsys, write(tmp_path, config))
    assert code == 3
    assert lines == [
        f"stquant: general.model_path: model file not found: {tmp_path / 'nope.h5'}",
        f"stquant: dataset.test_path: {tmp_path / 'a_file'} is a file; expected a folder of class folders",
    ]
