"""Modal dialogs: a yes/no confirmation and a file or folder picker."""

from __future__ import annotations

from collections.abc import Iterable, Set as AbstractSet
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Footer, Label

from engine.models.files import FORMATS

MODEL_SUFFIXES = set(FORMATS)  # the engine's list of model file suffixes


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 60; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button("Yes (y)", id="confirm-yes", variant="warning", compact=True)
                yield Button("No (n)", id="confirm-no", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


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


class PathPickerScreen(ModalScreen[str | None]):
    """Browse from a folder and pick a file with one of `suffixes`, or a folder when `suffixes` is empty.

    Files: Enter picks. Folders: Enter picks the folder under the cursor, Space opens it. Esc keeps the
    current value; Backspace goes to the parent folder.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("backspace", "up", "Parent folder"),
    ]
    DEFAULT_CSS = """
    PathPickerScreen { align: center middle; }
    PathPickerScreen > Vertical { width: 100%; height: 1fr; border: thick $accent; background: $surface; }
    PathPickerScreen #picker-title { width: 1fr; }
    PathPickerScreen PathTree { height: 1fr; }
    """

    def __init__(self, start: Path, suffixes: AbstractSet[str] = frozenset(), what: str = "a folder") -> None:
        super().__init__()
        self.start = start
        self.suffixes = set(suffixes)
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Pick {self.what} (keys below)", id="picker-title")
            tree = PathTree(self.start, self.suffixes, id="picker-tree")
            tree.auto_expand = bool(self.suffixes)  # folders: Enter picks rather than opens
            yield tree
        yield Footer()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(str(event.path))

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        if not self.suffixes:
            self.dismiss(str(event.path))

    def action_up(self) -> None:
        tree = self.query_one(PathTree)
        tree.path = Path(tree.path).resolve().parent
