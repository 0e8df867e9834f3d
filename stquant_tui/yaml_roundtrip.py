"""Round-trip YAML (ruamel.yaml): comments, blank lines, key order, quoting and flow style survive a save.

ruamel.yaml re-emits a document with one indentation width, while model zoo files mix widths (2 under
`dataset:`, 3 elsewhere). `render` therefore keeps every line of the user's text that ruamel would
emit unchanged, and takes from ruamel only the lines an edit changed, indented like their neighbours:
an edit changes its own line and nothing else.
"""

from __future__ import annotations

import difflib
import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one line
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def load(text: str) -> CommentedMap:
    """The mapping of a YAML document, with its comments and styles attached."""
    data = _yaml().load(text)
    return data if isinstance(data, dict) else CommentedMap()


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
        out += [_reindent(line, old[:i2 if i2 > i1 else i1], mine) for line in new[j1:j2]]
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
