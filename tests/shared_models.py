"""Keras models that several test files load the same way, loaded once per pytest process.

`pytest -n 2 --dist loadfile` runs whole files in each worker, so the files one worker runs share a load. Only for
tests that never change the model: each use checks that its weights are still those it was loaded with.
"""

import functools
import hashlib
from pathlib import Path
from typing import Any

from tests.conftest import _asset

FLOWERS_H5 = ("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft.h5")


def _weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()


@functools.cache
def _loaded(path: Path) -> tuple[Any, str]:
    import tf_keras

    model = tf_keras.models.load_model(path, compile=False)
    return model, _weights_digest(model)


def tf_keras_model(path: Path) -> Any:
    """The .h5 model at `path` as tf_keras itself loads it (not compiled), loaded once per process."""
    model, digest = _loaded(Path(path).resolve())
    assert _weights_digest(model) == digest, f"a test changed the shared model of {path} in place"
    return model


def flowers_model() -> Any:
    """The tutorial model (the assets' flowers MobileNet v2), skipped when the assets are absent."""
    return tf_keras_model(_asset(*FLOWERS_H5))
