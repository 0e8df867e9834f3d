"""Read YAML config files keeping the line of every key, so errors can say `file:line`."""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.errors import ConfigError, InputError


@dataclass
class YamlSource:
    """A parsed YAML mapping plus the 1-based line of each dotted key path."""

    data: dict
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str = "<config>") -> YamlSource:
    """Parse YAML text into a YamlSource; the top level must be a mapping."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if data is None:
        raise ConfigError(f"{name}: the config file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the config must be a mapping of sections (general, dataset, ...)")
    lines: dict[str, int] = {}
    _record_lines(node, "", lines)
    return YamlSource(data=data, name=name, lines=lines)


def _record_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        lines[key] = key_node.start_mark.line + 1
        _record_lines(value_node, key + ".", lines)
