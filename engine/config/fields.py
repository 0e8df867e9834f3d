"""Small schema questions an editor asks about one key (import-light: pydantic and the schema only)."""

from __future__ import annotations

from typing import Any

from engine.config import schema


def is_required(key: str) -> bool:
    """True if the key must be written (no default) once its section is present."""
    parent, _, name = key.rpartition(".")
    model = schema.Config if not parent else schema.model_of(schema.field_annotation(parent))
    if model is None or name not in model.model_fields:
        return False
    return model.model_fields[name].is_required()


def accepts_none(key: str) -> bool:
    """True if `null` is a valid value for the key."""
    return schema.validate_field(key, None) is None


def default_of(key: str) -> Any:
    """The schema default of a key (None if it has none)."""
    parent, _, name = key.rpartition(".")
    model = schema.Config if not parent else schema.model_of(schema.field_annotation(parent))
    if model is None or name not in model.model_fields:
        return None
    field = model.model_fields[name]
    return None if field.is_required() else field.get_default(call_default_factory=True)
