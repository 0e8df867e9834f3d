"""Class-folder datasets (`root/<class>/<image>`): scanning, labels, seeded splits.

Labels follow the model zoo's rule: a class's label is its index in the sorted class names. Only image
files count (jpg, jpeg, png, bmp, gif; any case); anything else is skipped and counted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import ConfigError, InputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})


@dataclass
class ClassFolders:
    """The image files of a class-folder dataset, with their labels, in the reference's order."""

    root: Path
    class_names: list[str]
    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    non_images: list[Path] = field(default_factory=list)
    extra_folders: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)


def list_class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of `root` (hidden ones ignored)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def scan(root: Path, class_names: list[str] | None, key: str) -> ClassFolders:
    """Scan `root/<class>/<image>`; `key` names the config key in error messages."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{key}: dataset folder not found: {root}")
    folders = list_class_folders(root)
    if not folders:
        raise InputError(f"{key}: no class sub-folders in {root} (expected {root}/<class>/<image>)")
    if class_names:
        missing = [name for name in class_names if name not in folders]
        if missing:
            raise ConfigError(f"dataset.class_names: no folder for class {', '.join(map(repr, missing))} in {root}")
        names = sorted(class_names)
    else:
        names = folders
    found = ClassFolders(root=root, class_names=names, extra_folders=[f for f in folders if f not in names])
    if found.extra_folders:
        log.warning("%s: folders not in dataset.class_names, ignored: %s", root, ", ".join(found.extra_folders))
    for label, name in enumerate(names):
        for entry in sorted(os.scandir(root / name), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                found.files.append(path)
                found.labels.append(label)
            elif not entry.name.startswith("."):
                found.non_images.append(path)
    if found.non_images:
        log.warning("%s: skipped %d non-image file(s), e.g. %s", root, len(found.non_images), found.non_images[0])
    if not found.files:
        raise InputError(f"{key}: no image files (jpg, jpeg, png, bmp, gif) under {root}")
    return found


def shuffled(data: ClassFolders, seed: int) -> tuple[list[Path], list[int]]:
    """The file list in the reference's seeded random order (np.random.RandomState(seed).shuffle)."""
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
    files, labels = shuffled(data, seed)
    start = len(files) - int(len(files) * split)
    if start >= len(files):
        raise ConfigError(f"dataset.validation_split: {split} of {len(files)} images leaves no image")
    return files[start:], labels[start:]
