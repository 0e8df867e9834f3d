"""The model file itself, before any library reads it: which format, is it there, may its stored code run.

Shared by `load` (TensorFlow) and `info` (no TensorFlow), so neither imports the other.
"""

import json
import zipfile
from pathlib import Path
from typing import Any

from engine.common.errors import InputError
from engine.common.files import open_regular

FORMATS = {".h5": "h5", ".hdf5": "h5", ".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
_trusted = False
KerasConfig = dict[str, Any]  # a model config as Keras stores it (JSON)


def trust_stored_code(trusted: bool) -> None:
    """Process-wide: may loading run Python code stored in a model file (Lambda layers, custom classes)?"""
    global _trusted
    _trusted = bool(trusted)


def stored_code_trusted() -> bool:
    """True once `trust_stored_code(True)` was called (the CLI's `--trust-model`)."""
    return _trusted


def check_model_file(path: Path) -> Path:
    """Return `path` as a Path, or raise InputError if it is missing, not a file or not readable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file not found: {path}")
    if not path.is_file():
        raise InputError(f"model path is not a file: {path}")
    try:
        with open_regular(path):
            pass
    except PermissionError:
        raise InputError(f"permission denied: {path}") from None
    return path


def model_format(path: Path) -> str:
    """The model format named by the file suffix ('h5' | 'keras' | 'onnx' | 'tflite')."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported model file type (expected {', '.join(FORMATS)})")
    return fmt


def read_keras_config(path: Path) -> KerasConfig:
    """The model config stored in a .h5 (`model_config` attribute) or .keras (`config.json`) file."""
    if model_format(path) == "keras":
        try:
            with zipfile.ZipFile(path) as z:
                config: KerasConfig = json.loads(z.read("config.json"))
                return config
        except (zipfile.BadZipFile, KeyError, ValueError):
            raise InputError(f"{path}: not a Keras model (no zip archive with config.json)") from None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        raise InputError(f"{path}: not a Keras model (not an HDF5 file)") from None
    if raw is None:
        raise InputError(f"{path}: HDF5 file holds no model_config (weights only?); a full saved model is needed")
    try:
        config = json.loads(raw)
    except ValueError:
        raise InputError(f"{path}: the stored model_config is not valid JSON") from None
    return config
