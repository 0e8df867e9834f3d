"""The wizard reads a config's scalars as the engine does (PyYAML, YAML 1.1), and Save writes what it reads back.

ruamel.yaml (the wizard's round trip) defaults to YAML 1.2, where `no` is a string and `1e3` a float; the engine's
reader takes `no` as false and `1e3` as a string. A draft that read them otherwise would find no problem in a
file `stquant validate` refuses.
"""

from __future__ import annotations

from pathlib import Path

from engine.cli import main
from engine.config.yaml_source import read_yaml
from stquant_tui import yaml_roundtrip
from stquant_tui.draft import DEMO_CONFIG, Draft

# each differs between YAML 1.1 and 1.2, or between PyYAML and ruamel.yaml's defaults
SCALARS = ["no", "yes", "on", "Off", "y", "0755", "-010", "0o17", "1_000", "1:30", "1:30.5", "0x1F", "0b101"]
SCALARS += [".5", "1e3", "1.0e+3", "1.", "~", "Null", "+12", "08", "09.5", "TRUE", "=x", ".NaN"]


def test_each_scalar_reads_in_the_wizard_as_in_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "scalars.yaml"
    path.write_text("".join(f"k{i}: {value}\n" for i, value in enumerate(SCALARS)))
    engine = read_yaml(path).data
    draft = Draft.load(path).data
    for i, value in enumerate(SCALARS):
        ours, theirs = draft[f"k{i}"], engine[f"k{i}"]
        alike = yaml_roundtrip.same(ours, theirs) or (ours != ours and theirs != theirs)  # NaN
        assert alike, f"{value}: the wizard reads {ours!r}, the engine {theirs!r}"


def test_class_names_no_and_yes_are_refused_by_the_draft_as_by_validate(tmp_path: Path, capsys) -> None:
    text = (Path(__file__).parents[2] / DEMO_CONFIG).read_text()
    lines = [line for line in text.splitlines() if line.strip().startswith("class_names:")]
    assert len(lines) == 1
    path = tmp_path / "yes_no.yaml"
    path.write_text(text.replace(lines[0], lines[0].split(":")[0] + ": [no, yes, on, off, a, b, c, d, e, f]"))
    problems = Draft.load(path).problems()
    assert "dataset.class_names.0" in [problem.key for problem in problems], problems
    assert main(["validate", str(path)]) == 2
    assert "dataset.class_names.0: Input should be a valid string (got False)" in capsys.readouterr().err


def test_save_writes_floats_and_octals_that_the_engine_reads_as_the_draft(tmp_path: Path) -> None:
    original = "# kept\nmode: 0755   # octal in YAML 1.1\nrate: 0.5\nnames: [no, x]\n"
    path = tmp_path / "config.yaml"
    path.write_text(original)
    draft = Draft.load(path)
    draft.edit("rate", 1e-05)  # Python writes 1e-05, which YAML 1.1 reads as a string
    draft.edit("extra", 2.5e20)
    saved = draft.save(tmp_path / "saved.yaml").read_text()
    assert saved.startswith("# kept\nmode: 0755   # octal in YAML 1.1\n") and "names: [no, x]\n" in saved
    engine = read_yaml(tmp_path / "saved.yaml").data
    assert engine == {"mode": 0o755, "rate": 1e-05, "names": [False, "x"], "extra": 2.5e20}
    assert not yaml_roundtrip.changed_keys(engine, draft.data)
    whole = yaml_roundtrip.dump(draft.data)  # the text of a new config (no file to edit)
    assert read_yaml_text(tmp_path, whole) == engine


def read_yaml_text(folder: Path, text: str) -> dict:
    path = folder / "whole.yaml"
    path.write_text(text)
    return read_yaml(path).data
