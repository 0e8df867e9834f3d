"""The bundled demo: the sample configs and the small digits classifier they run on, shipped as package data.

`SAMPLES` is the repository's top-level `sample_configs/` folder (a symbolic link in a clone, a copy in the
wheel), so a clone and an installed package read the same files. `write_demo` is `stquant demo DIR`.
Imports only the standard library and `engine.common`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from engine.common.errors import ConfigError, InputError

SAMPLES = Path(__file__).resolve().parent / "sample_configs"
QUICK_START = "quantization_config.yaml"


def write_demo(dest: Path) -> list[Path]:
    """Copy the sample configs and the demo into `dest` (a new or empty folder), all or nothing.

    The files get 0666 and the folders 0777 minus the umask. Returns the sample configs written.
    """
    dest = Path(dest).expanduser().absolute()
    if (dest.is_dir() and any(dest.iterdir())) or (dest.exists() and not dest.is_dir()):
        raise ConfigError(f"{dest}: already exists and is not an empty folder; give a new folder")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = _new_folder(dest)
    except OSError as error:
        raise InputError(f"{dest}: cannot create it ({error.strerror or error})") from None
    try:
        _copy_samples(staging)
        os.replace(staging, dest)
    except OSError as error:
        raise InputError(f"{dest}: cannot write the demo ({error.strerror or error})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(dest.glob("*.yaml"))


def _new_folder(dest: Path) -> Path:
    """Create an empty, uniquely named folder beside `dest` (mode 0777 minus the umask)."""
    while True:
        staging = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _copy_samples(staging: Path) -> None:
    """Copy every file of `SAMPLES` under `staging` (new files: the umask applies, not the package's modes)."""
    for source in sorted(SAMPLES.rglob("*")):
        relative = source.relative_to(SAMPLES)
        if "__pycache__" in relative.parts:
            continue
        if source.is_dir():
            (staging / relative).mkdir()
        else:
            shutil.copyfile(source, staging / relative)
