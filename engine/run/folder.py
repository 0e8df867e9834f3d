"""The run folder: created (or reused with `--overwrite`), locked for the run's lifetime, never over an input.

A run holds an exclusive `fcntl.flock` on `.stquant.lock` inside its folder from before it writes anything
until its record is written; the lock file stays (removed, two later runs could each lock a file of that
name: the one removed and a new one). Exit codes of what is refused here:
- 2 (ConfigError): the folder holds an earlier run or comparison and `--overwrite` was not given, or the
  run would write over one of its inputs (the config file, the model, the classes file) or into a dataset
  folder (compared by inode: a symlink or another spelling of the same path is the same file);
- 3 (InputError): the folder cannot be created or written, or another stquant run is using it right now.
With `--overwrite`, the earlier run's record, log and `variant_*` folders are removed first, so that the
folder never mixes two runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.common.errors import ConfigError, InputError
from engine.config.schema import Config
from engine.config.unused_keys import used_dataset_keys

LOCK_NAME = ".stquant.lock"
RECORDS = ("run_summary.json", "comparison.json", "recovery.json")
EARLIER = (*RECORDS, "comparison.md", "stquant.log")  # removed (with the FOLDERS) by --overwrite
WRITTEN = ("config.yaml", *EARLIER)  # the files every run or comparison may write at the top of its folder
VARIANTS = "variant_*"  # stquant compare's variants
STEPS = "recovery_steps"  # stquant recover's steps
FOLDERS = (VARIANTS, STEPS)
DATASET_KEYS = ("quantization_path", "training_path", "validation_path", "test_path")


@contextlib.contextmanager
def claimed_run_dir(
    config: Config, output_dir: Path | None, overwrite: bool, subfolders: tuple[str, ...]
) -> Iterator[Path]:
    """The run folder, locked for the block: `output_dir` (key --output-dir), else a new `hydra.run.dir`.

    `subfolders`: glob patterns of the folders (relative to the run folder) the run writes into, checked
    to hold no input. Raises ConfigError / InputError (see the module) before anything is written."""
    key = "--output-dir" if output_dir is not None else "hydra.run.dir"
    target = Path(output_dir) if output_dir is not None else config.run_dir()
    check_inputs(config, target, key, subfolders)
    run_dir = make_run_dir(target, key) if output_dir is not None else make_unique_run_dir(target, key)
    with locked(run_dir, key):
        held = [name for name in RECORDS if (run_dir / name).exists()]
        if held and not overwrite:
            raise ConfigError(
                f"{key}: {run_dir} already holds a run ({held[0]}); choose another folder or add --overwrite"
            )
        if overwrite:
            _remove_earlier(run_dir, key)
        yield run_dir


def check_inputs(config: Config, run_dir: Path, key: str, subfolders: tuple[str, ...]) -> None:
    """ConfigError if a run in `run_dir` would write over an input file or into a dataset folder."""
    folder = os.path.realpath(run_dir)
    for name, path in _input_folders(config):
        if _inside(os.path.realpath(path), folder) is not None:
            raise ConfigError(
                f"{key}: {run_dir} is inside the dataset folder {path} ({name}); the run would write "
                "into it; choose a folder outside the dataset"
            )
    for name, path in _input_files(config):
        if not path.is_file():
            continue
        for written in WRITTEN:
            if _same_file(path, Path(folder, written)):
                raise ConfigError(
                    f"{key}: the run would write {Path(run_dir, written)} over {path} ({name}); choose another folder"
                )
    for name, path in [*_input_files(config), *_input_folders(config)]:
        relative = _inside(folder, os.path.realpath(path))
        if relative and any(_matches(relative, pattern) for pattern in subfolders):
            raise ConfigError(
                f"{key}: {path} ({name}) lies in {Path(run_dir, relative[0])}, which the run writes "
                "into; choose another folder"
            )


def make_run_dir(path: Path, key: str) -> Path:
    """Create (or reuse) the run folder the user named; return it resolved."""
    _create(path, key, exist_ok=True)
    return path.resolve()


def make_unique_run_dir(path: Path, key: str) -> Path:
    """Create a new run folder: `path`, else `path_1`, `path_2`... (mkdir is atomic: two runs never share one)."""
    for index in range(10_000):
        candidate = path if index == 0 else path.with_name(f"{path.name}_{index}")
        if _create(candidate, key, exist_ok=False):
            return candidate.resolve()
    raise InputError(f"{key}: no free run folder name beside {path}")


def _create(path: Path, key: str, exist_ok: bool) -> bool:
    """mkdir `path` and check it is writable; False if it exists (and `exist_ok` is off)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(exist_ok=exist_ok)
        except FileExistsError:
            if path.is_dir():
                return False
            raise
        descriptor, probe = tempfile.mkstemp(prefix=".stquant_write_test", dir=path)  # unique: runs race here
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{key}: cannot write the run folder {path} ({reason})") from None
    return True


@contextlib.contextmanager
def locked(run_dir: Path, key: str) -> Iterator[None]:
    """Hold the exclusive lock of `run_dir` for the block; InputError naming the folder if another run has it."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise InputError(f"{key}: cannot write the run folder {run_dir} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{key}: {run_dir} is in use by another stquant run; wait for it to end or choose another folder"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_earlier(run_dir: Path, key: str) -> None:
    """Remove what an earlier run left at the top of `run_dir` (its record, log and variant folders)."""
    try:
        for name in EARLIER:
            (run_dir / name).unlink(missing_ok=True)
        for path in (path for pattern in FOLDERS for path in run_dir.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    except OSError as exc:
        raise InputError(f"{key}: cannot remove the earlier run from {run_dir} ({exc.strerror})") from None


def _input_files(config: Config) -> list[tuple[str, Path]]:
    files = [("the config file", config.source_path)] if config.source_path else []
    for name, value in (
        ("general.model_path", config.general.model_path),
        ("dataset.classes_file_path", config.dataset.classes_file_path),
    ):
        if value:
            files.append((name, config.resolve_path(value)))
    return files


def _input_folders(config: Config) -> list[tuple[str, Path]]:
    """The dataset folders the run reads (and test_path, which `stquant compare` reads in any mode)."""
    keys = [key for key in DATASET_KEYS if key in used_dataset_keys(config) or key == "test_path"]
    values = [(f"dataset.{key}", getattr(config.dataset, key, None)) for key in keys]
    return [(name, config.resolve_path(value)) for name, value in values if value]


def _inside(parent: str, path: str) -> tuple[str, ...] | None:
    """The parts of `path` below `parent` (() when equal), or None when `path` is not inside `parent`."""
    try:
        relative = os.path.relpath(path, parent)
    except ValueError:
        return None
    if relative == os.curdir:
        return ()
    parts = tuple(Path(relative).parts)
    return None if parts[0] == os.pardir else parts


def _matches(relative: tuple[str, ...], pattern: str) -> bool:
    """True if the path of `relative` parts lies in (or is) a folder matching the glob `pattern`."""
    wanted = Path(pattern).parts
    return len(relative) >= len(wanted) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(relative, wanted))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
