"""Round-trip YAML (ruamel.yaml): comments, blank lines, key order, quoting and flow style survive a save.

ruamel.yaml re-emits a document with one indentation width, while model zoo files mix widths (2 under
`dataset:`, 3 elsewhere). `render` therefore keeps every line of the user's text that ruamel would
emit unchanged, and takes from ruamel only the lines an edit changed, indented like their neighbours:
an edit changes its own line and nothing else.
"""

from __future__ import annotations

import difflib
import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from engine.common.errors import ConfigError


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one line
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def load(text: str, name: str = "<config>") -> CommentedMap:
    """The mapping of a YAML document, with its comments and styles attached.

    Raises ConfigError, worded as the engine's YAML errors (`engine.config.yaml_source`), for what ruamel
    refuses: `name:line: key K given twice (first at name:line); keep one`, or `name:line: YAML syntax error: ...`.
    """
    try:
        data = _yaml().load(text)
    except DuplicateKeyError as exc:
        raise ConfigError(_duplicate_message(exc, text, name)) from None
    except YAMLError as exc:
        raise ConfigError(_syntax_message(exc, name)) from None
    return data if isinstance(data, CommentedMap) else CommentedMap()


def _syntax_message(exc: YAMLError, name: str) -> str:
    """`name:line: YAML syntax error: problem` (a tab gets a hint: PyYAML takes some tabs that ruamel refuses)."""
    mark = exc.problem_mark if isinstance(exc, MarkedYAMLError) else None
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["invalid YAML"])[0]
    hint = " (indent and separate with spaces)" if "\\t" in problem else ""
    return f"{where}: YAML syntax error: {problem}{hint}"


def _duplicate_message(exc: DuplicateKeyError, text: str, name: str) -> str:
    """The engine's duplicate-key line: the key, its line, and the line of its first occurrence."""
    key_match = re.match(r'found duplicate key "(.*?)" with value', exc.problem or "", re.DOTALL)
    key = key_match.group(1) if key_match else "?"
    mapping, duplicate = exc.context_mark, exc.problem_mark
    if mapping is None or duplicate is None:
        return f"{name}: key {key} given twice; keep one"
    first = _first_key_line(text, mapping.index, duplicate.index, key)
    origin = f"first at {name}:{first}" if first else f"first in the mapping at {name}:{mapping.line + 1}"
    return f"{name}:{duplicate.line + 1}: key {key} given twice ({origin}); keep one"


def _first_key_line(text: str, mapping_at: int, duplicate_at: int, key: str) -> int | None:
    """1-based line of the first `key` before offset `duplicate_at` in the mapping that starts at offset
    `mapping_at` (None if it is not written alike, as `0x1` and `1`)."""
    stack: list[Node] = [_yaml().compose(text)]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode) and node.start_mark.index == mapping_at:
            return next(
                (
                    k.start_mark.line + 1
                    for k, _ in node.value
                    if isinstance(k, ScalarNode) and k.value == key and k.start_mark.index < duplicate_at
                ),
                None,
            )
        if node is not None and not isinstance(node, ScalarNode):
            stack += [child for pair in node.value for child in pair] if isinstance(node, MappingNode) else node.value
    return None


def dump(data: dict) -> str:
    """ruamel's text of `data`."""
    stream = io.StringIO()
    _yaml().dump(data, stream)
    return stream.getvalue()


def like(old: Any, new: Any) -> Any:
    """`new` in the style of `old`: the same quoting for a string, flow style kept for a list."""
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        seq = CommentedSeq(new)
        if old.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    if isinstance(old, str) and isinstance(new, str) and type(old) is not str:
        return type(old)(new)
    return new


def render(data: dict, original: str, original_dump: str) -> str:
    """The text of `data`: `original` with only the lines ruamel changes between `original_dump` (ruamel's
    text of the unedited document) and its text of `data` replaced."""
    old, new, mine = original_dump.splitlines(True), dump(data).splitlines(True), original.splitlines(True)
    if len(old) != len(mine):  # ruamel merged or split lines: no line-for-line map, use its text
        return "".join(new)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            out += mine[i1:i2]
            continue
        moved: list[str] = []
        if tag == "insert":  # ruamel hangs blank lines and comments on the key before: add above them
            while i1 > 0 and out and _is_gap(old[i1 - 1]):
                i1 -= 1
                moved.insert(0, out.pop())
        if out and not out[-1].endswith("\n"):  # the file ended without a newline
            out[-1] += "\n"
        out += [_reindent(line, old[: i2 if i2 > i1 else i1], mine) for line in new[j1:j2]]
        out += moved
    return "".join(out)


def _is_gap(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _reindent(line: str, before: list[str], mine: list[str]) -> str:
    """`line` indented as the user indents the closest line above that ruamel puts at the same depth."""
    for index in range(len(before) - 1, -1, -1):
        if not _is_gap(before[index]) and _indent(before[index]) == _indent(line):
            return " " * _indent(mine[index]) + line.lstrip(" ")
    return line
