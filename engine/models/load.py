"""Load Keras models (.h5 / .keras) with the Keras that wrote them: Keras 3, or Keras 2 as `tf_keras`.

A `.keras` archive is Keras 3. An HDF5 file records `keras_version`: a Keras 2 file (every model zoo
`.h5`) loads with `tf_keras`, the Keras 2 implementation that reads it faithfully (Keras 3 rejects
ST's MobileNet files: `DepthwiseConv2D` stores `groups=1`), without importing Keras 3 at all (a slow
import). Should the preferred Keras fail, the other one is tried. The CLI sets `TF_USE_LEGACY_KERAS=1`
so that `import tensorflow` preloads `tf_keras` rather than Keras 3 (a faster start-up);
Keras 3 models still load with Keras 3. TensorFlow is imported inside the functions, so importing
this module stays cheap.

Loading never runs code stored in the file unless the user trusts it (`trust_stored_code(True)`, set
by `--trust-model`): recognised Lambda layers are replaced by equivalent layers in the stored config
(`engine.models.keras_lambda`; the file is loaded from a rewritten temporary copy), other Lambdas and
custom layer classes are refused (InputError), and Keras 3 loads with `safe_mode=True`.
"""

import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

from engine.common.errors import EngineError, InputError, first_line
from engine.models import files
from engine.models.files import KERAS_SUFFIXES, KerasConfig, check_model_file, read_keras_config
from engine.models.keras_lambda.layers import tensor_expression_class
from engine.models.library_internals import is_keras3

log = logging.getLogger(__name__)

KerasModel: TypeAlias = Any  # a keras.Model or a tf_keras.Model (not named: TensorFlow is imported only when loading)


class LazyKerasModel:
    """A Keras model file loaded the first time something needs it, once; `needed_by` lists what asked for it, in
    order (the first one loaded it; empty: never loaded). `known_keras3`: whether the file is a Keras 3 model, when
    known without loading it (from the statistics cache)."""

    def __init__(self, path: Path, model: KerasModel = None, needed_by: tuple[str, ...] = ()) -> None:
        self.path = path
        self._model = model
        self.needed_by = list(needed_by)
        self.known_keras3: bool | None = None

    def get(self, need: str) -> KerasModel:
        """The model (loaded now if nothing needed it before); `need` names what asks for it."""
        self.record(need)
        if self._model is None:
            self._model = load_keras_model(self.path)
        return self._model

    def record(self, need: str) -> None:
        """Note that `need` used the model file (a child process loads it: `engine.quantize.keras_onnx`)."""
        if need not in self.needed_by:
            self.needed_by.append(need)

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded in this process."""
        return self._model is not None

    @property
    def keras3(self) -> bool:
        """Whether the model is a Keras 3 one (loads it only when that is not known otherwise)."""
        if self._model is None and self.known_keras3 is not None:
            return self.known_keras3
        return is_keras3(self._model if self._model is not None else self.get("keras_version"))


def resolved_keras_model(model: KerasModel, path: Path, need: str) -> KerasModel:
    """The Keras model of `path`: `model` itself when loaded, loaded from a `LazyKerasModel` or from `path`."""
    if isinstance(model, LazyKerasModel):
        return model.get(need)
    return model if model is not None else load_keras_model(path)


def load_keras_model(path: Path) -> KerasModel:
    """Load a .h5/.keras model for inference (not compiled): a Keras 3 or a `tf_keras` model."""
    from engine.models.keras_lambda import check_stored_code, rewrite_config

    path = check_model_file(path)
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise InputError(f"{path}: not a Keras model (expected .h5 or .keras)")
    keras_version = _check_container(path)
    config = read_keras_config(path)
    check_stored_code(path, config, files.stored_code_trusted())
    loaders = [_load_keras3, _load_tf_keras]
    if keras_version.startswith(("1.", "2.")):
        loaders.reverse()
    elif path.suffix.lower() == ".keras":
        loaders = loaders[:1]
    errors = []
    with _with_config(path, rewrite_config(config)) as source:
        for load in loaders:
            try:
                return load(source)
            except Exception as error:  # noqa: BLE001 - any failure: try the other Keras, then report one line
                log.debug("%s cannot load %s (%s)", load.__name__, path, _one_line(error))
                errors.append(_one_line(error))
    raise EngineError(f"{path}: Keras could not load the model: {errors[0]}")


def _load_keras3(path: Path) -> Any:
    import keras

    tensor_expression_class(keras)  # registers TensorExpression with Keras 3
    return keras.models.load_model(path, compile=False, safe_mode=not files.stored_code_trusted())


def _load_tf_keras(path: Path) -> Any:
    import tf_keras

    tensor_expression_class(tf_keras)  # registers TensorExpression with tf_keras
    return tf_keras.models.load_model(path, compile=False, safe_mode=not files.stored_code_trusted())


@contextmanager
def _with_config(path: Path, config: KerasConfig | None) -> Iterator[Path]:
    """`path` itself, or a temporary copy of it that stores `config` instead (the user's file is untouched)."""
    if config is None:
        yield path
        return
    text = json.dumps(config)
    with tempfile.TemporaryDirectory(prefix="stquant-model-") as folder:
        copy = Path(folder) / path.name
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
                for item in source.infolist():
                    target.writestr(item, text if item.filename == "config.json" else source.read(item))
        else:
            import h5py

            shutil.copyfile(path, copy)
            with h5py.File(copy, "r+") as f:
                f.attrs["model_config"] = text
        yield copy


def _check_container(path: Path) -> str:
    """The Keras version that wrote `path` ("3" for a .keras archive); InputError if it holds no model."""
    if path.suffix.lower() == ".keras":
        import zipfile

        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a Keras model (a .keras file is a zip archive; this one is not)")
        return "3"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            has_config = "model_config" in f.attrs
            version = f.attrs.get("keras_version", "")
    except OSError:
        raise InputError(f"{path}: not a Keras model (not an HDF5 file)") from None
    if not has_config:
        raise InputError(f"{path}: HDF5 file holds no model_config (weights only?); a full saved model is needed")
    return version.decode() if isinstance(version, bytes) else str(version)


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"
