"""One form row per config key: label, editor (id = key path joined with `-`) and an error line.

The row only reports what was typed and what the engine's schema says about it
(`engine.config.schema.validate_field`); the app decides what to do with the draft.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Label, Select, Static

from engine.config import schema
from engine.config.fields import default_of, is_required
from stquant_tui.draft import from_text, to_text, widget_id
from stquant_tui.widgets.text import show_text


class PathSuggester(Suggester):
    """Completes the last path component from the folder's entries (folders get a trailing `/`)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        head, tail = os.path.split(value)
        folder = os.path.expanduser(head) or "."
        try:
            with os.scandir(folder) as entries:
                names = sorted((e.name + ("/" if e.is_dir() else "")) for e in entries if e.name.startswith(tail))
        except OSError:
            return None
        names = [n for n in names if not n.startswith(".") or tail.startswith(".")]
        return os.path.join(head, names[0]) if names and names[0] != tail else None


class FieldInput(Input):
    """A one-line field: its text is selected when it gets focus (typing replaces it), ctrl+u clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+u", "clear_field", "Clear field")]

    def action_clear_field(self) -> None:
        self.value = ""


class FieldRow(Vertical):
    """A labelled editor for one dotted config key."""

    DEFAULT_CSS = """
    FieldRow { height: auto; border-left: blank; }
    FieldRow > Horizontal { height: auto; }
    FieldRow .field-label { width: 23; padding-right: 1; color: $text-muted; }
    FieldRow Input, FieldRow Select { width: 1fr; }
    FieldRow .field-error { color: $text-error; padding-left: 23; display: none; }
    FieldRow.-invalid .field-error { display: block; }
    FieldRow.-invalid .field-label { color: $text-error; text-style: bold; }
    FieldRow:focus-within { border-left: thick $accent; }
    FieldRow:focus-within .field-label { color: $text; text-style: bold reverse; }
    """

    @dataclass
    class Edited(Message):
        """The user (or a load) changed the field."""

        row: FieldRow
        key: str
        value: Any
        error: str | None

    def __init__(
        self,
        key: str,
        label: str,
        kind: str = "text",
        *,
        placeholder: str = "",
        path: bool = False,
        choices: list | tuple | None = None,
        off_choice: str = "not allowed",
        check: Callable[[str, Any], str | None] | None = None,
    ) -> None:
        """`choices`: what a select offers (default: the schema's values); a loaded value outside them is
        shown as "value (`off_choice`)" and flagged by the engine, not offered. `check(key, value)`: what is wrong
        with a valid value that only the files can tell (a folder that does not exist), run as the user leaves
        the field and on Next."""
        super().__init__(id=f"row-{widget_id(key)}")
        self.key = key
        self.kind = kind
        self.label = label
        self.choices = list(choices) if choices is not None else None
        self.off_choice = off_choice
        default = default_of(key)
        self.placeholder = placeholder or (
            "" if is_required(key) else "(not set)" if default is None else f"(default: {to_text(default)})"
        )
        self.path = path
        self.check = check
        self.left_error: str | None = None  # what `check` said when the user last left the field
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        wid = widget_id(self.key)
        with Horizontal():
            yield Label(self.label, classes="field-label")
            if self.kind in ("select", "bool"):
                default = default_of(self.key)
                prompt = "(none)" if default is None else f"(default: {to_text(default)})"
                yield Select(self._options(), id=wid, compact=True, prompt=prompt)  # blank until loaded: a load
                # never writes a key the file does not have (a missing required one is flagged)
            else:
                yield FieldInput(
                    id=wid, compact=True, placeholder=self.placeholder, suggester=PathSuggester() if self.path else None
                )
        yield Static("", id=f"{wid}-error", classes="field-error")

    def _options(self, extra: Any = None) -> list[tuple[str, Any]]:
        if self.kind == "bool":
            values: list[Any] = [True, False]
            options = [("true", True), ("false", False)]
        else:
            values = self.choices if self.choices is not None else list(schema.choices(self.key) or [])
            options = [(str(v), v) for v in values]
        if extra is not None and extra not in values:
            options.append((f"{extra} ({self.off_choice})", extra))
        return options

    @property
    def help(self) -> str:
        """One line on the field: the schema's description and its default (`engine.config.schema` Field texts)."""
        return help_text(self.key)

    def on_descendant_focus(self) -> None:
        self.app.show_help(self)  # type: ignore[attr-defined]

    @property
    def editor(self) -> Input | Select:
        return self.query_one(f"#{widget_id(self.key)}")  # type: ignore[return-value]

    def show(self, value: Any) -> None:
        """Display a draft value (posts Edited so the error line reflects it)."""
        editor = self.editor
        if isinstance(editor, Select):
            if value is None:
                if editor._allow_blank:  # noqa: SLF001 - Select has no public "may be blank" flag
                    editor.clear()
                self._report(None)
                return
            try:
                hash(value)
            except TypeError:
                value = str(value)
            if value not in [v for _, v in self._options()]:
                editor.set_options(self._options(extra=value))
            editor.value = value
            self._report(value)
        else:
            text = to_text(value)
            if editor.value == text:
                self._report(from_text(self.kind, text))
            editor.value = text

    def current(self) -> Any:
        """The value the editor shows right now (keys may be ahead of the Changed messages)."""
        editor = self.editor
        if isinstance(editor, Select):
            return None if editor.value is Select.NULL else editor.value
        return from_text(self.kind, editor.value)

    def sync(self) -> Any:
        """Re-check the editor's current value now (`check` included); return it."""
        value = self.current()
        self._run_check(value)
        self.set_error(self.validate(value))
        return value

    def on_descendant_blur(self) -> None:
        if self.check is not None and self.is_attached:
            self.sync()

    def _run_check(self, value: Any) -> None:
        if self.check is None:
            return
        valid = value is not None and schema.validate_field(self.key, value) is None
        self.left_error = self.check(self.key, value) if valid else None

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.left_error = None  # checked again when the user leaves the field
        self._report(from_text(self.kind, event.value))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._report(None if event.value is Select.NULL else event.value)

    def _report(self, value: Any) -> None:
        self.set_error(self.validate(value))
        self.post_message(self.Edited(self, self.key, value, self.error))

    def validate(self, value: Any) -> str | None:
        if value is None:  # empty: not written, so the schema default applies (unless it has none)
            return "required" if is_required(self.key) and self._section_written() else None
        return schema.validate_field(self.key, value) or self.left_error

    def _section_written(self) -> bool:
        """Whether the key's section is in the draft: a section itself is required by mode, not by its keys."""
        section = self.key.rpartition(".")[0]
        return not section or self.app.draft.get(section) is not None  # type: ignore[attr-defined]

    def set_error(self, message: str | None) -> None:
        """Show a message from a step or whole-config check."""
        self.error = message
        self.set_class(message is not None, "-invalid")
        self.editor.set_class(message is not None, "-invalid")
        show_text(self.query_one(".field-error", Static), f"↑ {message}" if message else "")


def help_text(key: str) -> str:
    """The schema's description of a key, plus its default (empty when the schema has no description)."""
    parent, _, name = key.rpartition(".")
    model = schema.Config if not parent else schema.model_of(schema.field_annotation(parent))
    field = model.model_fields.get(name) if model is not None else None
    if field is None or not field.description:
        return ""
    if field.is_required():
        return f"{field.description} Required."
    default = default_of(key)
    return f"{field.description} Default: {'none' if default is None else to_text(default)}."
