"""Load Keras models (.h5 / .keras) with Keras 3, falling back to the Keras 2 implementation `tf_keras`.

The model zoo's .h5 files are Keras 2 HDF5 files that Keras 3 rejects (`DepthwiseConv2D` stores
`groups=1`). Trying Keras 3 first costs about 0.02 s before it fails on those files, and then
`tf_keras` loads them (about 2.5 s for the tutorial MobileNet v2); files Keras 3 accepts (e.g. the
MLPerf ResNet-8 .h5) load with Keras 3. So: Keras 3 first, `tf_keras` whenever Keras 3 fails.
TensorFlow is imported inside the functions so that importing this module stays cheap.
"""

import logging
from pathlib import Path
from typing import Any

from engine.errors import EngineError, InputError, first_line

log = logging.getLogger(__name__)

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def check_model_file(path: Path) -> Path:
    """Return `path` as a Path, or raise InputError if it is missing or not a file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file not found: {path}")
    if not path.is_file():
        raise InputError(f"model path is not a file: {path}")
    return path


def load_keras_model(path: Path) -> Any:
    """Load a .h5/.keras model for inference (not compiled): a Keras 3 or a `tf_keras` model."""
    path = check_model_file(path)
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise InputError(f"{path}: not a Keras model (expected .h5 or .keras)")
    _check_container(path)
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as keras3_error:  # noqa: BLE001 - any Keras 3 failure means: try Keras 2
        if path.suffix.lower() == ".keras":
            raise EngineError(f"{path}: Keras could not load the model: {_one_line(keras3_error)}") from None
        log.debug("Keras 3 cannot load %s (%s); using tf_keras", path, _one_line(keras3_error))
    import tf_keras

    try:
        return tf_keras.models.load_model(path, compile=False)
    except Exception as keras2_error:  # noqa: BLE001 - report one line, not a traceback
        raise EngineError(f"{path}: neither Keras 3 nor tf_keras could load the model: {_one_line(keras2_error)}") from None


def _check_container(path: Path) -> None:
    """Raise InputError unless `path` is an HDF5 file with a stored model or a .keras zip archive."""
    if path.suffix.lower() == ".keras":
        import zipfile

        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a Keras model (a .keras file is a zip archive; this one is not)")
        return
    import h5py

    try:
        with h5py.File(path, "r") as f:
            has_config = "model_config" in f.attrs
    except OSError:
        raise InputError(f"{path}: not a Keras model (not an HDF5 file)") from None
    if not has_config:
        raise InputError(f"{path}: HDF5 file holds no model_config (weights only?); a full saved model is needed")


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"
