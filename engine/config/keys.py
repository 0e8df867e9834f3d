"""Dotted key paths (`quantization.granularity`) in a nested config mapping: get, set, delete."""

from typing import Any


def get_key(data: Any, key: str, default: Any = None) -> Any:
    """The value at `key`, or `default` when a section on the way is missing or not a mapping."""
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` to `value`, creating (or replacing by) a mapping every section on the way that is not one."""
    *sections, name = key.split(".")
    node = data
    for part in sections:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[name] = value


def delete_key(data: dict[str, Any], key: str) -> None:
    """Remove `key` if it is there; the sections on the way stay, even when left empty."""
    parent, _, name = key.rpartition(".")
    node = get_key(data, parent) if parent else data
    if isinstance(node, dict):
        node.pop(name, None)
