"""The Draft's state without copies: `problems()` leaves the draft as it is, `modified` sees any change."""

from __future__ import annotations

from pathlib import Path

from stquant_tui import yaml_roundtrip
from stquant_tui.draft import Draft

LEGACY = """\
# a v4-style file: the schema moves model.model_path and renames dataset.dataset_name
model:
  model_path: missing_model.h5   # a comment
dataset:
  dataset_name: flowers
  class_names: [daisy, tulip]
  quantization_path: ${STQUANT_UNSET_VARIABLE}/photos
preprocessing:
  rescaling: {scale: '1/127.5', offset: -1}
"""


def test_problems_leave_the_draft_and_the_text_save_writes_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "legacy.yaml"
    path.write_text(LEGACY)
    draft = Draft.load(path)
    before = yaml_roundtrip.dump(draft.data)
    problems = draft.problems()
    assert any(problem.key == "dataset.quantization_path" for problem in problems), problems
    assert yaml_roundtrip.dump(draft.data) == before
    assert list(draft.data["model"]) == ["model_path"] and "dataset_name" in draft.data["dataset"]
    assert not draft.modified
    assert draft.yaml_text() == LEGACY


def test_modified_sees_a_change_inside_a_list_and_forgets_it_once_saved(tmp_path: Path) -> None:
    path = tmp_path / "legacy.yaml"
    path.write_text(LEGACY)
    draft = Draft.load(path)
    draft.data["dataset"]["class_names"].append("rose")
    assert draft.modified
    draft.data["dataset"]["class_names"].pop()
    assert not draft.modified
    draft.edit("preprocessing.rescaling.offset", -1.0)  # a float is not the int the file holds
    assert draft.modified
    draft.save(path)
    assert not draft.modified and "offset: -1.0}" in path.read_text()
    twin = draft.copy()
    twin.edit("dataset.class_names", ["daisy"])
    assert twin.modified and not draft.modified


def test_an_edit_beside_a_merge_key_does_not_write_the_merged_keys_out(tmp_path: Path) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text("base: &b\n  x: 1\n  y: [1, 2]\n\nc:\n  <<: *b\n  y: 3\nd: 1\n")
    draft = Draft.load(path)
    draft.edit("c.y", 4)
    text = draft.yaml_text()  # ruamel drops `<<` from the nodes it builds a mapping from: render must not see that
    c_lines = text.split("c:\n", 1)[1].split("d:", 1)[0]
    assert c_lines.split() == ["<<:", "*b", "y:", "4"], text
    assert yaml_roundtrip.load(text) == draft.data


def test_an_edit_to_the_value_the_file_holds_changes_nothing(tmp_path: Path) -> None:
    """ruamel loads `[a, b]` as a CommentedSeq and `0.5` as a ScalarFloat: a form field's plain list or float of the
    same value is no edit (before, every Next from Dataset counted one and re-checked every step)."""
    path = tmp_path / "config.yaml"
    path.write_text("dataset:\n  class_names: [daisy, tulip]\n  quantization_split: 0.5\n  seed: 1\n")
    draft = Draft.load(path)
    assert not draft.edit("dataset.class_names", ["daisy", "tulip"])
    assert not draft.edit("dataset.quantization_split", 0.5)
    assert not draft.edit("dataset.missing", None)
    assert draft.edit("dataset.seed", 1.0) and draft.edit("dataset.quantization_split", 0.25)
    assert draft.modified
