"""Read YAML config files keeping the line of every key, so errors can say `file:line`.

Only plain YAML is read (PyYAML's safe loader: no Python tags), and its size is bounded: the file
(MAX_BYTES), the values once aliases are expanded (MAX_VALUES: no "billion laughs"), the nesting
(MAX_DEPTH), and no alias may contain itself. Anything beyond is a ConfigError naming the file.
A key given twice in one mapping is refused naming both lines, as the reference's loader does
(PyYAML alone keeps the last value silently).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.common.errors import ConfigError, InputError
from engine.common.files import open_regular

MAX_BYTES = 1_000_000
MAX_VALUES = 100_000
MAX_DEPTH = 50
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: faster, same nodes and marks


YamlMap = dict[str, Any]  # a YAML mapping as parsed: its values are whatever the file holds


@dataclass
class YamlSource:
    """A parsed YAML mapping plus the 1-based line of each dotted key path."""

    data: YamlMap
    name: str = "<config>"
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, key_path: str) -> str:
        """`file:line` of the key, or of its closest ancestor that has one."""
        parts = key_path.split(".")
        while parts:
            line = self.lines.get(".".join(parts))
            if line is not None:
                return f"{self.name}:{line}"
            parts.pop()
        return self.name


def read_yaml(path: Path) -> YamlSource:
    """Parse a YAML file; raise InputError if unreadable, ConfigError (with line) if malformed."""
    path = Path(path)
    try:
        with open_regular(path) as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a config file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise InputError(f"{path}: cannot read config file ({reason})") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: config file larger than {MAX_BYTES // 1000} kB; not a config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str = "<config>") -> YamlSource:
    """Parse YAML text into a YamlSource; the top level must be a mapping."""
    node, data = _load(text, name)
    if node is None or data is None:
        raise ConfigError(f"{name}: the config file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the config must be a mapping of sections (general, dataset, ...)")
    lines: dict[str, int] = {}
    _record_lines(node, "", lines)
    return YamlSource(data=data, name=name, lines=lines)


def parse_value(text: str) -> Any:
    """One YAML value (an override's right-hand side): its value, or the text itself if it is not YAML.

    Raises ConfigError if it is YAML beyond the size limits."""
    try:
        return _load(text, "value")[1]
    except _Malformed:
        return text


class _Malformed(ConfigError):
    """Not YAML at all (as opposed to YAML beyond the limits)."""


def _load(text: str, name: str) -> tuple[yaml.Node | None, Any]:
    """(root node, value) of a YAML document, within the limits."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_BYTES // 1000} kB")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Malformed(f"{name}: not valid Unicode text (character {exc.start + 1})") from None
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node, name, {}, set(), 0)
        check_duplicate_keys(node, name)
        return node, loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["invalid YAML"])[0]
        raise _Malformed(f"{where}: YAML syntax error: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{name}: YAML nested too deeply (more than {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()


def _check_size(node: yaml.Node, name: str, sizes: dict[int, int], open_nodes: set[int], depth: int) -> int:
    """Number of values under `node` once aliases are expanded; ConfigError beyond the limits."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ConfigError(f"{name}:{node.start_mark.line + 1}: YAML alias refers to itself (a recursive value)")
    if depth > MAX_DEPTH:
        raise ConfigError(f"{name}:{node.start_mark.line + 1}: YAML nested too deeply (more than {MAX_DEPTH} levels)")
    open_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    total = 1
    for child in children:
        total += _check_size(child, name, sizes, open_nodes, depth + 1)
        if total > MAX_VALUES:
            raise ConfigError(f"{name}: YAML expands to more than {MAX_VALUES} values (aliases repeated too often)")
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def check_duplicate_keys(node: yaml.Node, name: str, prefix: str = "") -> None:
    """ConfigError `name:line: key K given twice (first at name:line)` for the first mapping key repeated under `node`.

    Call it on a composed node tree whose size was checked (`_check_size`); a merge key (`<<`) is not a key."""
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            check_duplicate_keys(child, name, prefix)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[tuple[str, str], int] = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            line = key_node.start_mark.line + 1
            identity = (key_node.tag, key_node.value)
            if identity in seen:
                raise ConfigError(
                    f"{name}:{line}: key {prefix}{key_node.value} given twice "
                    f"(first at {name}:{seen[identity]}); keep one"
                )
            seen[identity] = line
        check_duplicate_keys(value_node, name, f"{prefix}{getattr(key_node, 'value', '?')}.")


def _record_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        lines[key] = key_node.start_mark.line + 1
        _record_lines(value_node, key + ".", lines)
