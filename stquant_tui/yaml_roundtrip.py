"""Round-trip YAML (ruamel.yaml): comments, blank lines, key order, quoting and flow style survive a save.

ruamel.yaml re-emits a document with one indentation width, while model zoo files mix widths (2 under
`dataset:`, 3 elsewhere). `render` therefore edits the user's text where ruamel's parser says each edited
key is: an edit changes its own lines and nothing else. `check` proves a text reads back as the draft.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarint import OctalInt
from ruamel.yaml.tag import Tag

from engine.common.errors import ConfigError

_ENGINE_RESOLVER = pyyaml.resolver.Resolver()  # the engine reads configs with PyYAML: YAML 1.1 scalars


def _engine_tag(value: str) -> str:
    """The tag the engine's reader gives the plain scalar `value`."""
    return _ENGINE_RESOLVER.resolve(pyyaml.nodes.ScalarNode, value, (True, False))


class _Resolver(VersionedResolver):
    """Plain scalars typed as the engine reads them (YAML 1.1: `no` is false, `0755` octal, `1:30` is 90, `1e3` a
    string), not by ruamel's default YAML 1.2 rules; what ruamel writes is unchanged (no `%YAML` directive)."""

    @property
    def processing_version(self) -> Any:
        return (1, 1)  # ruamel's int constructor reads octal and base-60 digits only for YAML 1.1

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return Tag(suffix=_engine_tag(value))
        return super().resolve(kind, value, implicit)


class _Representer(RoundTripRepresenter):
    """ruamel's round-trip representer, writing `null` for None and quoting a string the engine's YAML 1.1
    reader (PyYAML) would read as something else (`yes`, `on`, `1_000`)."""

    def represent_str(self, data: str) -> Any:
        style = None if _engine_tag(data).endswith(":str") else "'"
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
_Representer.add_representer(str, _Representer.represent_str)
# YAML 1.1 spellings: `1.0e-05` (PyYAML reads `1e-05` as a string), octal `0755` (and `0o755` as a string)
_Representer.add_representer(float, pyyaml.representer.SafeRepresenter.represent_float)
_Representer.add_representer(
    OctalInt, lambda rep, data: rep.represent_scalar("tag:yaml.org,2002:int", f"{'-' * (data < 0)}0{abs(data):o}")
)


def _yaml(indent: int | None = None) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Resolver = _Resolver
    yaml.Representer = _Representer
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one line
    if indent:
        yaml.indent(mapping=indent, sequence=indent + 2, offset=indent)
    return yaml


def load(text: str, name: str = "<config>") -> CommentedMap:
    """The mapping of a YAML document, with its comments and styles attached.

    Raises ConfigError, worded as the engine's YAML errors (`engine.config.yaml_source`), for what ruamel
    refuses: `name:line: key K given twice (first at name:line); keep one`, or `name:line: YAML syntax error: ...`.
    """
    with _refused(text, name):
        data = _yaml().load(text)
    return data if isinstance(data, CommentedMap) else CommentedMap()


@contextlib.contextmanager
def _refused(text: str, name: str) -> Iterator[None]:
    """ruamel's errors while parsing `text` as one ConfigError line (see `load`)."""
    try:
        yield
    except DuplicateKeyError as exc:
        raise ConfigError(_duplicate_message(exc, text, name)) from None
    except YAMLError as exc:
        raise ConfigError(_syntax_message(exc, name)) from None


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


def dump(data: dict, indent: int | None = None) -> str:
    """ruamel's text of `data` (`indent`: the columns a nested block moves right; default ruamel's)."""
    stream = io.StringIO()
    _yaml(indent).dump(data, stream)
    return stream.getvalue()


def render(data: dict, original: str) -> str:
    """The text of `data`, written as `original` (the text `data` was loaded from) with only the edited keys'
    lines changed: a changed value in place on its line, a removed key's lines gone, a new key on lines of its
    own after the key before it, indented as its siblings (ruamel's whole text if the file's layout is one
    this does not edit: the document not a block mapping, merge keys)."""
    root = _composed(original)
    if not isinstance(root, MappingNode) or root.flow_style or not root.value:
        return dump(data)
    doc = _Document(original, root)
    edits: list[_Edit] = []
    try:
        _edit_mapping(doc, root, _loaded(original), data, "", doc.step, edits)
        return doc.apply(edits) if edits else original
    except _UnsupportedLayout:
        return dump(data)


def _composed(original: str) -> Node | None:
    return _parse(original)[0]


def _loaded(original: str) -> CommentedMap:
    return _parse(original)[1]


# `render` runs on each edit against the same original text: parse it once (the results are only read).
@functools.lru_cache(maxsize=4)
def _parse(text: str) -> tuple[Node | None, CommentedMap]:
    """The composed document and the mapping `load` gives, built from the same parse (from a second one when
    building would rewrite the nodes: ruamel removes a merge key `<<` from its mapping node)."""
    yaml = _yaml()
    with _refused(text, "<config>"):
        root = yaml.compose(text)
        built = _yaml().compose(text) if _rewrites(root) else root
        data = yaml.constructor.construct_document(built) if built is not None else None
    return root, data if isinstance(data, CommentedMap) else CommentedMap()


def _rewrites(root: Node | None) -> bool:
    """Whether a composed document has a key ruamel's constructor rewrites in its node (`<<` or `=`)."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, ScalarNode) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            if any(key.tag in _REWRITTEN_KEYS for key, _ in node.value):
                return True
            stack += [child for pair in node.value for child in pair]
        else:
            stack += node.value
    return False


_REWRITTEN_KEYS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


def check(text: str, data: dict, before: str | None, name: str) -> None:
    """Raise ConfigError (one line naming the key) unless `text` reads back as `data`; `before` is the text
    `data` was loaded from (None: a new config), to name the edited keys when `text` does not parse."""
    try:
        parsed = _parsed(text, name)
    except ConfigError as exc:
        edited = changed_keys(_loaded(before) if before else CommentedMap(), data)
        keys = ", ".join(edited[:3]) + (f" (+{len(edited) - 3} more)" if len(edited) > 3 else "")
        raise ConfigError(f"not saved: after editing {keys or 'the draft'} the YAML would not parse: {exc}") from None
    differences = changed_keys(parsed, data)
    if differences:
        raise ConfigError(f"not saved: {name}: {differences[0]} would not read back as the value in the wizard")


def _parsed(text: str, name: str) -> CommentedMap:
    """`text` parsed through `render`'s cache (unedited, the draft's text is there already; saved, it is the
    text `render` reads next), or ConfigError naming `name`."""
    try:
        return _loaded(text)
    except ConfigError:
        return load(text, name)  # raises again, naming the file


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two mappings (type-aware: `1` is not `1.0` nor `true`)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if same(old, new) else [prefix.rstrip(".") or "(the document)"]
    keys = list(old) + [key for key in new if key not in old]
    return [
        key
        for name in keys
        for key in changed_keys(old.get(name, _MISSING), new.get(name, _MISSING), f"{prefix}{name}.")
    ]


def snapshot(value: Any) -> Any:
    """A copy of `value`'s mappings and lists, for `same` to compare against later (the scalars are immutable
    and shared; comments and styles are left out)."""
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, list):
        return [snapshot(item) for item in value]
    return value


def same(old: Any, new: Any) -> bool:
    """Whether two YAML values are equal, mapping order and scalar style aside (type-aware)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(same(old[key], new[key]) for key in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new, strict=True))
    return _kind(old) == _kind(new) and old == new


_MISSING = object()


def _kind(value: Any) -> type:
    return next((kind for kind in (bool, int, float, str, dict, list) if isinstance(value, kind)), type(value))


class _UnsupportedLayout(Exception):
    """A document whose keys `render` cannot edit line by line."""


@dataclass
class _Edit:
    """Replace lines `start` to `end` (exclusive; equal: insert before `start`) of the original by `lines`."""

    start: int
    end: int
    lines: list[str]


class _Document:
    """The original text as lines, with what `render` needs to know about its layout."""

    def __init__(self, text: str, root: MappingNode) -> None:
        self.lines = text.splitlines(True)
        self.newline = "\r\n" if self.lines[0].endswith("\r\n") else "\n"
        steps = Counter(_steps(root))
        self.step = steps.most_common(1)[0][0] if steps else 2

    def key_line(self, key: Node) -> int:
        """The line of a mapping key, which must start its line (not `- key:` or `--- key:`)."""
        line = key.start_mark.line
        if self.lines[line][: key.start_mark.column].strip():
            raise _UnsupportedLayout
        return line

    def last_line(self, key: Node, value: Node) -> int:
        """The last line of `key: value` (the comments and blank lines after it belong to what follows)."""
        if _empty(value):
            return self.key_line(key)
        end = value.end_mark
        text = self.lines[end.line] if end.line < len(self.lines) else ""
        line = end.line if text[: end.column].strip() else end.line - 1
        while line > key.start_mark.line and self._gap(line, comments=not isinstance(value, ScalarNode)):
            line -= 1
        return line

    def _gap(self, line: int, comments: bool) -> bool:
        text = self.lines[line].strip()
        return not text or (comments and text.startswith("#"))

    def spaced(self, pairs: list[tuple[Node, Node]]) -> bool:
        """Whether the keys of a mapping are separated by blank lines (as the sections of most configs)."""
        return any(self._gap(self.last_line(key, value) + 1, comments=False) for key, value in pairs[:-1])

    def in_place(self, key: Node, value: Node, text: str) -> str | None:
        """The key's line with its one-line value replaced by `text` (None: the value spans lines)."""
        line = self.key_line(key)
        current = self.lines[line]
        if _empty(value):
            colon = current.index(":", key.end_mark.column) + 1
            return current[:colon] + " " + text + current[colon:]
        if value.start_mark.line != line or value.end_mark.line != line:
            return None
        return current[: value.start_mark.column] + text + current[value.end_mark.column :]

    def block(self, name: str, value: Any, column: int, step: int) -> list[str]:
        """`name: value` as lines at `column`, nested blocks `step` columns further right."""
        return [
            (" " * column + line if line else "") + self.newline
            for line in dump({name: _fresh(value)}, step).splitlines()
        ]

    def apply(self, edits: list[_Edit]) -> str:
        lines = [*self.lines[:-1], self.lines[-1].rstrip("\r\n") + self.newline]
        out: list[str] = []
        done = 0
        for edit in sorted(edits, key=lambda e: (e.start, e.end > e.start)):  # stable: in the order made
            if edit.start < done:
                raise _UnsupportedLayout
            out += lines[done : edit.start] + edit.lines
            done = edit.end
        return "".join(out + lines[done:])


def _edit_mapping(
    doc: _Document, node: MappingNode, old: dict, new: dict, prefix: str, step: int, edits: list[_Edit]
) -> None:
    """Edits turning the block mapping `node` (loaded as `old`) into `new`; `step`: its values' indentation."""
    pairs = {key.value: (key, value) for key, value in node.value if isinstance(key, ScalarNode)}
    if len(pairs) != len(node.value) or any(name not in old for name in pairs):
        raise _UnsupportedLayout  # a complex key or a merge (`<<:`)
    column = node.value[0][0].start_mark.column
    for name, (key, value) in pairs.items():
        if name not in new:
            edits.append(_Edit(doc.key_line(key), doc.last_line(key, value) + 1, []))
        elif same(old[name], new[name]):
            continue
        elif _block_mapping(value) and isinstance(old[name], dict) and isinstance(new[name], dict) and new[name]:
            _edit_mapping(
                doc,
                value,
                old[name],
                new[name],
                f"{prefix}{name}.",
                value.value[0][0].start_mark.column - column,
                edits,
            )
        else:
            inline = _inline(new[name])
            line = doc.in_place(key, value, inline) if inline is not None else None
            edits.append(
                _Edit(doc.key_line(key), doc.key_line(key) + 1, [line])
                if line is not None
                else _Edit(doc.key_line(key), doc.last_line(key, value) + 1, doc.block(name, new[name], column, step))
            )
    previous: str | None = None
    gap = [doc.newline] if doc.spaced(node.value) else []
    for name, value in new.items():
        if name in pairs:
            previous = name
            continue
        at = doc.last_line(*pairs[previous]) + 1 if previous else doc.key_line(node.value[0][0])
        lines = doc.block(name, value, column, step)
        edits.append(_Edit(at, at, gap + lines if previous else lines + gap))


def _steps(node: Node) -> list[int]:
    """How far each nested block mapping of `node` is indented from its parent."""
    found: list[int] = []
    if _block_mapping(node):
        for key, value in node.value:
            if _block_mapping(value):
                found += [value.value[0][0].start_mark.column - key.start_mark.column, *_steps(value)]
    return found


def _block_mapping(node: Node) -> bool:
    return isinstance(node, MappingNode) and not node.flow_style and bool(node.value)


def _empty(node: Node) -> bool:
    """An implicit null (`key:` and nothing after it)."""
    return isinstance(node, ScalarNode) and node.value == "" and not node.style


def _inline(value: Any) -> str | None:
    """`value` as YAML text on one line (None: a block collection, or text that ruamel folds over lines)."""
    if (
        isinstance(value, (dict, list))
        and value
        and not (isinstance(value, (CommentedMap, CommentedSeq)) and value.fa.flow_style())
    ):
        return None
    lines = dump({"k": _fresh(value)}).splitlines()
    return lines[0][len("k: ") :] if len(lines) == 1 else None


def _fresh(value: Any) -> Any:
    """A copy of `value` without the comments and blank lines ruamel attached to it (styles kept)."""
    if isinstance(value, dict):
        mapping = CommentedMap((key, _fresh(item)) for key, item in value.items())
        if isinstance(value, CommentedMap) and value.fa.flow_style():
            mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        seq = CommentedSeq(_fresh(item) for item in value)
        if isinstance(value, CommentedSeq) and value.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    return value
