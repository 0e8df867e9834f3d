"""Class-folder datasets (`root/<class>/<image>`): scanning, labels, seeded splits.

Labels follow the model zoo's rule: a class's label is its index in the sorted class names. Only image
files count (jpg, jpeg, png, bmp, gif; any case); anything else is skipped and counted.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from engine.common.errors import ConfigError, InputError

T = TypeVar("T")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})  # the wizard counts images with these too
LISTED = 5  # names quoted in a warning about many folders


@dataclass
class ClassFolders:
    """The image files of a class-folder dataset, with their labels, in the reference's order."""

    root: Path
    class_names: list[str]
    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    non_images: list[Path] = field(default_factory=list)
    extra_folders: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line each, for `Plan.warnings`

    def __len__(self) -> int:
        return len(self.files)


def list_class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of `root` (hidden ones ignored)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def check_root(root: Path, key: str) -> list[str]:
    """The class folders of `root`; InputError naming `key` if it is missing, not a folder, unreadable or has none
    (the check the wizard runs as the user leaves a dataset field)."""
    folders = _read_folder(root, key, list_class_folders)
    if not folders:
        raise InputError(f"{key}: no class sub-folders in {root} (expected {root}/<class>/<image>)")
    return folders


def scan(root: Path, class_names: list[str] | None, key: str) -> ClassFolders:
    """Scan `root/<class>/<image>`; `key` names the config key in error messages (InputError if the
    folder is missing, not a folder or unreadable; ConfigError if a listed class has no folder)."""
    root = Path(root)
    folders = check_root(root, key)
    if class_names:
        missing = [name for name in class_names if name not in folders]
        if missing:
            raise ConfigError(f"dataset.class_names: no folder for class {', '.join(map(repr, missing))} in {root}")
        names = sorted(class_names)
    else:
        names = folders
    _check_class_names(names, root, key)
    found = ClassFolders(root=root, class_names=names, extra_folders=[f for f in folders if f not in names])
    if found.extra_folders:
        found.warnings.append(
            f"{key}: folders not in dataset.class_names, ignored: {_listing(found.extra_folders, _printable)}"
        )
    empty = []
    for label, name in enumerate(names):
        entries = _read_folder(root / name, key, lambda folder: sorted(os.scandir(folder), key=lambda e: e.name))
        count = len(found.files)
        for entry in entries:
            path = Path(entry.path)
            if _is_file(entry) and path.suffix.lower() in IMAGE_EXTENSIONS:
                found.files.append(path)
                found.labels.append(label)
            elif not entry.name.startswith("."):
                found.non_images.append(path)
        if len(found.files) == count:
            empty.append(name)
    if empty:
        where = (
            f"the folder of class {_listing(empty, repr)}" if len(empty) <= LISTED else _listing(empty, repr, "class")
        )
        found.warnings.append(f"{key}: no images in {where} in {root}")
    if found.non_images:
        found.warnings.append(
            f"{key}: skipped {len(found.non_images)} non-image file(s) in {root}, e.g. {found.non_images[0]}"
        )
    if not found.files:
        raise InputError(f"{key}: no image files (jpg, jpeg, png, bmp, gif) under {root}")
    return found


def _check_class_names(names: list[str], root: Path, key: str) -> None:
    """ConfigError naming the first class folder whose name holds a line break or another control character."""
    for name in names:
        if len(name.splitlines()) > 1 or any(unicodedata.category(c) == "Cc" for c in name):
            raise ConfigError(
                f"{key}: class folder {name!r} in {root} has a line break or control character in "
                f"its name; rename the folder"
            )


def _printable(name: str) -> str:
    """A folder name as is, or repr'd when it holds characters a one-line message cannot show."""
    return name if name.isprintable() else repr(name)


def _listing(names: list[str], show: Callable[[str], str], kind: str = "") -> str:
    """`names` shown one by one, or their count and the first few when there are many."""
    if len(names) <= LISTED:
        return ", ".join(map(show, names))
    return f"{len(names)} {kind + ' ' if kind else ''}folders ({', '.join(map(show, names[:LISTED]))}, ...)"


def _read_folder(folder: Path, key: str, read: Callable[[Path], T]) -> T:
    """`read(folder)`, or an InputError naming the key if the folder is missing, a file or unreadable."""
    try:
        return read(folder)
    except FileNotFoundError:
        raise InputError(f"{key}: dataset folder not found: {folder}") from None
    except NotADirectoryError:
        if os.path.isfile(folder):
            raise InputError(f"{key}: {folder} is a file; expected a folder of class folders") from None
        raise InputError(f"{key}: dataset folder not found: {folder} (part of that path is a file)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{key}: cannot read the folder {folder} ({getattr(exc, 'strerror', None) or exc})") from None


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def shuffled(data: ClassFolders, seed: int) -> tuple[list[Path], list[int]]:
    """The file list in the reference's seeded random order (np.random.RandomState(seed).shuffle)."""
    import numpy as np  # here: `stquant validate` scans folders without numpy

    order = np.arange(len(data.files))
    np.random.RandomState(seed).shuffle(order)
    return [data.files[i] for i in order], [data.labels[i] for i in order]


def take_split(files: list[Path], split: float | None, key: str) -> list[Path]:
    """The first int(N * split) files (all when split is None); a split that leaves none is an error."""
    if split is None:
        return files
    count = int(len(files) * split)
    if count == 0:
        raise ConfigError(f"{key}: {split} of {len(files)} images leaves no image; raise the split")
    return files[:count]


def validation_tail(data: ClassFolders, split: float, seed: int) -> tuple[list[Path], list[int]]:
    """The reference's validation set when only training_path is given: the last `split` of the seeded list."""
    check_validation_split(len(data.files), split)
    files, labels = shuffled(data, seed)
    start = len(files) - int(len(files) * split)
    return files[start:], labels[start:]


def check_validation_split(count: int, split: float) -> None:
    """ConfigError if `split` of `count` images leaves no validation image."""
    if int(count * split) == 0:
        raise ConfigError(f"dataset.validation_split: {split} of {count} images leaves no image")
