"""Modal dialogs: a yes/no confirmation, the unsaved-edits question, how to start, the key overview and a file
or folder picker."""

from __future__ import annotations

import os
from collections.abc import Iterable, Set as AbstractSet
from pathlib import Path
from typing import ClassVar, TypeVar

from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, DirectoryTree, Input, Label

from engine.models.files import FORMATS
from stquant_tui.widgets.footer import KeyFooter

AnswerT = TypeVar("AnswerT")
MODEL_SUFFIXES = set(FORMATS)  # the engine's list of model file suffixes


class Question(ModalScreen[AnswerT]):
    """A question with a few answers, each a button and a key; `result` turns the answer's id into what it
    dismisses with."""

    ANSWERS: ClassVar[tuple[tuple[str, str, str], ...]] = ()  # (id, key, label); the first is the default button
    DEFAULT_CSS = """
    Question { align: center middle; }
    Question > Vertical { width: 66; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    Question .answers { height: auto; margin-top: 1; }
    Question Button { margin-right: 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield from self.body()
            with Horizontal(classes="answers"):
                for index, (answer, key, label) in enumerate(self.ANSWERS):
                    button = Button(f"{label} ({key})", id=f"answer-{answer}", compact=True)
                    if index == 0:
                        button.variant = "warning"
                    yield button

    def body(self) -> ComposeResult:
        """What comes between the question and its answers (none: a plain question)."""
        yield from ()

    def result(self, answer: str) -> AnswerT:
        raise NotImplementedError

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer((event.button.id or "").removeprefix("answer-"))

    def action_answer(self, answer: str) -> None:
        self.dismiss(self.result(answer))


class ConfirmScreen(Question[bool]):
    """Ask a yes/no question; dismisses with True for yes."""

    ANSWERS = (("yes", "y", "Yes"), ("no", "n", "No"))
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer('yes')", "Yes"),
        Binding("n,escape", "answer('no')", "No"),
    ]
    DEFAULT_CSS = "ConfirmScreen > Vertical { width: 60; }"

    def result(self, answer: str) -> bool:
        return answer == "yes"


class ChoiceScreen(Question[str]):
    """A question whose answers are named: dismisses with the answer's id."""

    def result(self, answer: str) -> str:
        return answer


class UnsavedScreen(ChoiceScreen):
    """Quitting with unsaved edits: save them, discard them, or stay."""

    ANSWERS = (("save", "s", "Save and quit"), ("discard", "d", "Discard and quit"), ("cancel", "esc", "Cancel"))
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "answer('save')", "Save and quit"),
        Binding("d", "answer('discard')", "Discard and quit"),
        Binding("escape,c", "answer('cancel')", "Cancel"),
    ]


class StartScreen(ChoiceScreen):
    """`stquant-tui` without a config: a new config from a clean draft, or the bundled demo."""

    ANSWERS = (("new", "n", "A new config"), ("demo", "d", "The demo config"))
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "answer('new')", "New config"),
        Binding("d", "answer('demo')", "Demo config"),
    ]


class KeysScreen(ModalScreen[None]):
    """Every key of the screen it was opened from (its active bindings: the focused widget's, the screen's,
    the app's), as `?` shows in k9s and lazygit."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,f1,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > Vertical { width: 70; max-height: 90%; height: auto; border: thick $accent; background: $surface; }
    KeysScreen DataTable { height: auto; max-height: 30; }
    """

    def __init__(self, bindings: dict[str, ActiveBinding], notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.rows = key_rows(bindings)
        self.notes = notes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Keys on this screen (esc closes)", id="keys-title")
            table: DataTable[str] = DataTable(id="keys-table", cursor_type="row", show_cursor=False)
            table.add_columns("Key", "What it does")
            table.add_rows(self.rows)
            yield table
            for note in self.notes:
                yield Label(note)


def key_rows(bindings: dict[str, ActiveBinding]) -> list[tuple[str, str]]:
    """(key as shown, what it does) per action: the footer's keys first, then the others (a field's editing keys);
    " (not now)" when disabled."""
    rows: dict[tuple[str, str], list[str]] = {}
    for key, active in sorted(bindings.items(), key=lambda item: not item[1].binding.show):
        binding = active.binding
        what = binding.description or binding.action.replace("_", " ")
        what += "" if active.enabled else " (not now)"
        rows.setdefault((active.node.__class__.__name__, what), []).append(binding.key_display or key)
    return [(", ".join(dict.fromkeys(keys)), what) for (_, what), keys in rows.items()]


class PathTree(DirectoryTree):
    """Folders, plus the files whose suffix is in `suffixes` (none: folders only); hidden entries left out."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select"),
        Binding("space", "toggle_node", "Open folder"),
    ]

    def __init__(self, path: Path, suffixes: set[str], **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.suffixes = suffixes

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in self.suffixes)]


class PathInput(Input):
    """The picker's path line: Down goes into the tree, to its first entry."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("down", "into_tree", "Into the list")]

    def action_into_tree(self) -> None:
        tree = self.screen.query_one(PathTree)
        tree.focus()
        if tree.cursor_line <= 0:
            tree.cursor_line = 0
            tree.action_cursor_down()


class PathPickerScreen(ModalScreen[str | None]):
    """Pick a file with one of `suffixes`, or a folder when `suffixes` is empty: type a path (Tab completes,
    an existing folder shows in the tree, Enter takes it) or browse the tree from `start` (Down enters it).

    Tree: files, Enter picks; folders, Enter picks the folder under the cursor, Space opens it; Backspace goes to
    the parent folder. Esc keeps the current value.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("backspace", "up", "Parent folder"),
    ]
    DEFAULT_CSS = """
    PathPickerScreen { align: center middle; }
    PathPickerScreen > Vertical { width: 100%; height: 1fr; border: thick $accent; background: $surface; }
    PathPickerScreen #picker-title { width: 1fr; }
    PathPickerScreen #picker-path { margin-bottom: 1; }
    PathPickerScreen PathTree { height: 1fr; }
    """

    def __init__(
        self, start: Path, suffixes: AbstractSet[str] = frozenset(), what: str = "a folder", current: str = ""
    ) -> None:
        """`current`: the field's value (an absolute path), shown in the path line."""
        super().__init__()
        self.start = start.resolve()
        self.suffixes = set(suffixes)
        self.what = what
        self.current = current or f"{self.start}{os.sep}"

    def compose(self) -> ComposeResult:
        from stquant_tui.widgets.fields import PathSuggester

        with Vertical():
            yield Label(self._title(self.start), id="picker-title")
            yield PathInput(
                self.current,
                id="picker-path",
                compact=True,
                suggester=PathSuggester(),
                placeholder="type a path; Tab completes, Enter takes it",
            )
            tree = PathTree(self.start, self.suffixes, id="picker-tree")
            tree.auto_expand = bool(self.suffixes)  # folders: Enter picks rather than opens
            yield tree
        yield KeyFooter()

    def _title(self, root: Path) -> str:
        return f"Pick {self.what}: {root}".replace("[", r"\[")

    def on_input_changed(self, event: Input.Changed) -> None:
        """A typed path naming an existing folder: the tree shows it."""
        folder = Path(os.path.expanduser(event.value))
        if event.value.endswith(os.sep) or folder.is_dir():
            self._show(folder if folder.is_dir() else folder.parent)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter on a typed path: take it if it is what is asked for; a folder while a file is asked: show it."""
        event.stop()
        path = Path(os.path.expanduser(event.value.strip())).resolve()
        fits = path.is_file() and path.suffix.lower() in self.suffixes if self.suffixes else path.is_dir()
        if fits:
            self.dismiss(str(path))
        elif path.is_dir():
            self._show(path)
            self.query_one(PathTree).focus()
        else:
            wanted = "a file " + "/".join(sorted(self.suffixes)) if self.suffixes else "a folder"
            self.notify(f"{path} is not {wanted}", severity="warning")

    def _show(self, folder: Path) -> None:
        tree = self.query_one(PathTree)
        if folder.is_dir() and Path(tree.path).resolve() != folder.resolve():
            tree.path = folder.resolve()
            self.query_one("#picker-title", Label).update(self._title(folder.resolve()))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(str(event.path))

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        if not self.suffixes:
            self.dismiss(str(event.path))

    def action_up(self) -> None:
        self._show(Path(self.query_one(PathTree).path).resolve().parent)
