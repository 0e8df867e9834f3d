"""Save never writes text that does not read back as the draft: an edit changes its own lines, in any layout."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node
from textual.widgets import Input
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, ROOT, settle, wait_until

from engine.common.errors import ConfigError
from engine.config import schema
from stquant_tui import yaml_roundtrip
from stquant_tui.app import StquantApp
from stquant_tui.draft import Draft, from_text, to_text

ST_CONFIGS = ROOT.parent / "shared" / "st_configs"


def _zoo_configs() -> list[Path]:
    """The model zoo's quantization and chain configs (and its user_config.yaml files), when present."""
    found = sorted(ST_CONFIGS.glob("services@*/image_classification/src/config_file_examples/*.yaml"))
    wanted = [p for p in found if p.name.startswith(("quantization", "chain_"))]
    return wanted + sorted(ST_CONFIGS.glob("services@*/image_classification/src/user_config.yaml"))


CONFIGS = sorted(ROOT.glob("sample_configs/*.yaml")) + _zoo_configs()


def saved(tmp_path: Path, text: str, *edits: tuple[str, object]) -> str:
    """The text Save writes after `edits` (key, value; None empties the field) on a file holding `text`."""
    source = tmp_path / "config.yaml"
    source.write_text(text)
    draft = Draft.load(source)
    for key, value in edits:
        draft.edit(key, value)
    draft.save(source)
    written = source.read_text()
    assert yaml_roundtrip.load(written) == draft.data
    return written


def changed_lines(before: str, after: str) -> list[str]:
    """The lines of a unified diff that differ (`-old`, `+new`)."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize("width", [2, 3, 4])
def test_clear_and_retype_changes_nothing_and_a_new_value_one_line(width: int, tmp_path):
    pad = " " * width
    text = (
        f"general:\n{pad}model_path: m.h5\npreprocessing:\n{pad}rescaling:\n{pad * 2}scale: 1/127.5\n"
        f"{pad * 2}offset: -1\n{pad}color_mode: rgb\n"
    )
    assert (
        saved(tmp_path, text, ("preprocessing.rescaling.scale", None), ("preprocessing.rescaling.scale", "1/127.5"))
        == text
    )
    after = saved(tmp_path, text, ("preprocessing.rescaling.scale", None), ("preprocessing.rescaling.scale", "1/255"))
    assert changed_lines(text, after) == [f"-{pad * 2}scale: 1/127.5", f"+{pad * 2}scale: 1/255"]


@pytest.mark.parametrize("width", [2, 3, 4])
def test_a_created_section_and_key_are_indented_as_the_file(width: int, tmp_path):
    pad = " " * width
    text = f"general:\n{pad}model_path: m.h5\n\ndataset:\n{pad}name: x\n"
    after = saved(tmp_path, text, ("dataset.seed", 7), ("quantization.granularity", "per_tensor"))
    assert changed_lines(text, after) == [f"+{pad}seed: 7", "+", "+quantization:", f"+{pad}granularity: per_tensor"]


def test_issue_example_demo_scale_retyped_saves_the_demo_unchanged(tmp_path):
    """The issue's case: 3-space demo, `scale` cleared and typed again -> the same file (it once read
    `offset` at 4 columns and `scale` at 6)."""
    text = DEMO_CONFIG.read_text()
    assert (
        saved(tmp_path, text, ("preprocessing.rescaling.scale", None), ("preprocessing.rescaling.scale", "1/127.5"))
        == text
    )
    # with a 2-space zoo layout the lines once swapped
    two = "preprocessing:\n  rescaling:\n    scale: 1/255\n    offset: 0\n"
    assert (
        saved(tmp_path, two, ("preprocessing.rescaling.scale", None), ("preprocessing.rescaling.scale", "1/255")) == two
    )


def test_flow_mappings_and_lists_stay_flow(tmp_path):
    text = (
        "preprocessing:\n  rescaling: {scale: 1/255, offset: 0}  # inputs in [0, 1]\ndataset:\n  class_names: [a, b]\n"
    )
    after = saved(tmp_path, text, ("preprocessing.rescaling.offset", -1), ("dataset.class_names", ["a", "c"]))
    assert changed_lines(text, after) == [
        "-  rescaling: {scale: 1/255, offset: 0}  # inputs in [0, 1]",
        "+  rescaling: {scale: 1/255, offset: -1}  # inputs in [0, 1]",
        "-  class_names: [a, b]",
        "+  class_names: [a, c]",
    ]


def test_comments_between_keys_stay_where_they_are(tmp_path):
    text = (
        "quantization:\n   # which converter\n   quantizer: TFlite_converter   # or Onnx_quantizer\n\n"
        "   # integer inputs\n   quantization_input_type: uint8\n# the end\n"
    )
    after = saved(
        tmp_path,
        text,
        ("quantization.quantizer", "Onnx_quantizer"),
        ("quantization.quantization_input_type", None),
        ("quantization.granularity", "per_tensor"),
    )
    assert after == (
        "quantization:\n   # which converter\n   quantizer: Onnx_quantizer   # or Onnx_quantizer\n\n"
        "   granularity: per_tensor\n\n   # integer inputs\n# the end\n"
    )  # keys spaced as the others


def test_switching_to_onnx_writes_the_quantizer_inside_quantization(tmp_path):
    """Once saved at the top level: `quantizer: Onnx_quantizer` outside `quantization:`."""
    text = DEMO_CONFIG.read_text()
    after = saved(
        tmp_path,
        text,
        ("general.model_path", "demo/model.onnx"),
        ("quantization.quantizer", None),
        ("quantization.quantizer", "Onnx_quantizer"),
    )
    assert changed_lines(text, after) == [
        "-   model_path: demo/digits_cnn.h5",
        "+   model_path: demo/model.onnx",
        "-   quantizer: TFlite_converter",
        "+   quantizer: Onnx_quantizer",
    ]


def test_emptied_section_reads_back_as_an_empty_mapping(tmp_path):
    text = "preprocessing:\n   rescaling:\n      scale: 1/255\n      offset: 0\n   color_mode: rgb\n"
    after = saved(tmp_path, text, ("preprocessing.rescaling.scale", None), ("preprocessing.rescaling.offset", None))
    assert after == "preprocessing:\n   rescaling: {}\n   color_mode: rgb\n"


def test_a_string_the_engine_would_read_as_a_boolean_is_quoted(tmp_path):
    after = saved(tmp_path, "dataset:\n  name: x\n", ("dataset.name", "yes"))
    assert after == "dataset:\n  name: 'yes'\n"
    assert yaml.safe_load(after) == {"dataset": {"name": "yes"}}  # as the engine reads it


def test_save_refuses_text_that_does_not_read_back(tmp_path, monkeypatch):
    """The issue's broken output (a misplaced `scale`): Save writes nothing and names the key."""
    source = tmp_path / "config.yaml"
    source.write_text(DEMO_CONFIG.read_text())
    draft = Draft.load(source)
    draft.edit("preprocessing.rescaling.scale", "1/255")
    broken = DEMO_CONFIG.read_text().replace(
        "      scale: 1/127.5\n      offset: -1\n", "    offset: -1\n      scale: 1/255\n"
    )
    monkeypatch.setattr(yaml_roundtrip, "render", lambda data, original: broken)
    with pytest.raises(
        ConfigError,
        match=r"^not saved: after editing preprocessing\.rescaling\.scale the YAML "
        r"would not parse: .*config\.yaml:\d+: YAML syntax error",
    ):
        draft.save(source)
    unparsed = DEMO_CONFIG.read_text().replace("      scale: 1/127.5\n", "")
    draft = Draft.load(source)  # a new draft: the first one keeps the text it rendered for its data
    draft.edit("preprocessing.rescaling.scale", "1/255")
    monkeypatch.setattr(yaml_roundtrip, "render", lambda data, original: unparsed)
    with pytest.raises(
        ConfigError,
        match=r"^not saved: .*config\.yaml: preprocessing\.rescaling\.scale would not "
        r"read back as the value in the wizard$",
    ):
        draft.save(source)
    assert source.read_text() == DEMO_CONFIG.read_text()


async def test_ctrl_u_and_retype_in_the_demo_saves_a_file_that_opens(tmp_path):
    """Through the keys: clear `scale` with ctrl+u, type it again, save elsewhere: only the two relative paths
    (rebased onto the new folder) differ from the demo's text, and the file opens again."""
    out = tmp_path / "mine.yaml"
    app = StquantApp(DEMO_CONFIG, out_path=out, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.step == "preprocessing")
        app.query_one("#preprocessing-rescaling-scale", Input).focus()
        await pilot.press("end", "ctrl+u", *"1/127.5")
        await pilot.pause()
        assert app.query_one("#preprocessing-rescaling-scale", Input).value == "1/127.5"
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+o")
        await wait_until(pilot, out.exists)
    demo, written = DEMO_CONFIG.read_text(), out.read_text()
    assert yaml_roundtrip.changed_keys(yaml_roundtrip.load(demo), yaml_roundtrip.load(written)) == [
        "general.model_path",
        "dataset.quantization_path",
    ]
    assert len(changed_lines(demo, written)) == 4
    StquantApp(out, engine_cmd=FAKE_ENGINE)  # opens again


def test_review_names_the_file_save_writes(tmp_path):
    """A draft from the demo saved elsewhere: validate's lines name the user's file, not the sample."""
    from stquant_tui.verdict import check_draft

    draft = Draft.load(DEMO_CONFIG)
    draft.edit("dataset.quantization_split", 2.0)
    verdict = check_draft(FAKE_ENGINE, draft, shown=str(tmp_path / "mine.yaml"))
    assert [(p.key, p.where) for p in verdict.problems] == [("dataset.quantization_split", f"{tmp_path}/mine.yaml:13")]


# ------------------------------------------------------------------ property test

NUMBER_KEYS = {
    "dataset.quantization_split",
    "dataset.seed",
    "preprocessing.rescaling.scale",
    "preprocessing.rescaling.offset",
    "quantization.target_opset",
}
LIST_KEYS = {"dataset.class_names"}
TEXT_KEYS = [
    "general.model_path",
    "dataset.name",
    "dataset.quantization_path",
    "dataset.test_path",
    "dataset.training_path",
    "dataset.validation_path",
    "quantization.export_dir",
    "benchmarking.board",
]
CHOICE_KEYS = [
    "operation_mode",
    "preprocessing.color_mode",
    "preprocessing.resizing.aspect_ratio",
    "preprocessing.resizing.interpolation",
    "quantization.granularity",
    "quantization.quantizer",
    "quantization.quantization_input_type",
    "quantization.quantization_output_type",
    "quantization.optimize",
]
KEYS = sorted(NUMBER_KEYS | LIST_KEYS) + TEXT_KEYS + CHOICE_KEYS
WORDS = st.sampled_from(
    [
        "x",
        "yes",
        "0.4",
        "1/255",
        "null",
        "a: b",
        "#x",
        "x #y",
        "it's",
        'say "hi"',
        "[1]",
        "~/data/é",
        "-1",
        "  padded ",
        "C:\\models\\m.h5",
        "${now:%Y}",
        "on",
        "0x10",
        "1e3",
    ]
)


def kind(key: str) -> str:
    return "number" if key in NUMBER_KEYS else "list" if key in LIST_KEYS else "text"


def typed(key: str, words: list[str]) -> object:
    """What a field gives for typed text."""
    return from_text(kind(key), ", ".join(words) if kind(key) == "list" else words[0])


@st.composite
def edit_steps(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Edits a user makes: clear, retype, set, unset, switch the model and the quantizer."""
    steps: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["clear", "retype", "set", "choose", "model"]))
        key = draw(st.sampled_from(KEYS))
        if action in ("clear", "retype"):
            steps.append((key, None))
            if action == "retype":
                steps.append((key, "RETYPE"))
        elif action == "set":
            steps.append((key, typed(key, draw(st.lists(WORDS, min_size=1, max_size=3)))))
        elif action == "choose":
            choice_key = draw(st.sampled_from(CHOICE_KEYS))
            steps.append((choice_key, draw(st.sampled_from(list(schema.choices(choice_key) or [True, False])))))
        else:
            onnx = draw(st.booleans())
            steps += [
                ("general.model_path", "models/m.onnx" if onnx else "models/m.h5"),
                ("quantization.quantizer", "Onnx_quantizer" if onnx else "TFlite_converter"),
            ]
    return steps


def key_lines(root: Node, lines: list[str], key: str) -> set[int]:
    """The lines `key: value` takes in a composed document, up to its last non-blank, non-comment line (empty
    if it is not there); a key inside a flow mapping owns the lines of that mapping."""
    node, pair = root, None
    for part in key.split("."):
        if not isinstance(node, MappingNode) or node.flow_style:
            break
        pair = next(((k, v) for k, v in node.value if k.value == part), None)
        if pair is None:
            return set()
        node = pair[1]
    if pair is None:
        return set()
    first, end = pair[0].start_mark.line, pair[1].end_mark
    last = end.line if end.line < len(lines) and lines[end.line][: end.column].strip() else end.line - 1
    while last > first and (lines[last].strip().startswith("#") or not lines[last].strip()):
        last -= 1
    return set(range(first, last + 1))


@functools.cache
def loaded(text: str) -> dict:
    """The source's mapping, parsed once per source: only read (a Draft deep-copies the data it is given)."""
    return yaml_roundtrip.load(text)


@functools.cache
def composed(text: str) -> Node | None:
    """The composed document (cached: each example reads its source's original text again; nodes are only read)."""
    return YAML(typ="rt").compose(text)


def outside(text: str, keys: list[str]) -> list[str]:
    """The lines of `text` that belong to none of `keys`, blank runs collapsed to one, none at the end."""
    root, lines = composed(text), text.splitlines()
    owned = set().union(*(key_lines(root, lines, key) for key in keys)) if root is not None else set()
    kept = [line.rstrip() for index, line in enumerate(lines) if index not in owned]
    return [line for index, line in enumerate(kept) if line or (index and kept[index - 1] and any(kept[index:]))]


@pytest.mark.skipif(len(CONFIGS) < 7, reason=f"model zoo configs not found under {ST_CONFIGS}")
@settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(source=st.sampled_from(CONFIGS), steps=edit_steps())
def test_any_edits_save_a_file_that_reads_back_with_only_the_edited_lines_changed(source: Path, steps) -> None:
    text = source.read_text(encoding="utf-8")
    draft = Draft(loaded(text), source, text)
    original = loaded(text)
    for key, value in steps:
        if value == "RETYPE":  # the value the field showed when loaded, typed again
            old = original_value(original, key)
            value = old if key in CHOICE_KEYS else from_text(kind(key), to_text(old))
        draft.edit(key, value)
    written = draft.yaml_text()
    yaml_roundtrip.check(written, draft.data, text, "saved.yaml")  # raises unless it reads back as the draft
    edited = yaml_roundtrip.changed_keys(original, draft.data)
    edited += [key.rpartition(".")[0] for key in edited if draft.get(key.rpartition(".")[0]) == {}]  # `x: {}`
    assert outside(written, edited) == outside(text, edited), steps


def original_value(original: dict, key: str) -> object:
    node: object = original
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


async def test_ctrl_o_refuses_a_text_that_does_not_read_back_and_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "mine.yaml"
    app = StquantApp(DEMO_CONFIG, out_path=out, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft.edit("preprocessing.rescaling.scale", "1/255")
        app.step = "review"
        await pilot.pause()
        real = yaml_roundtrip.render
        monkeypatch.setattr(yaml_roundtrip, "render", lambda data, original: real(data, original).replace("255", "256"))
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: any("not saved" in str(n.message) for n in app._notifications))
        message = next(str(n.message) for n in app._notifications if "not saved" in str(n.message))
    assert message == f"not saved: {out}: preprocessing.rescaling.scale would not read back as the value in the wizard"
    assert not out.exists()


async def test_review_of_the_demo_names_the_file_save_writes_not_the_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = StquantApp(engine_cmd=FAKE_ENGINE, ask_start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "StartScreen")
        await pilot.press("d")  # the demo
        await settle(pilot)
        app.query_one("#dataset-quantization_split", Input).value = "2"
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None and not app.verdict.ok)
        assert [p.where for p in app.verdict.problems] == ["stquant_config.yaml:13"]
