"""Tiny real models and calibration sets for the quantizer tests (no mocks)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

FLOWERS_SIZE = 128


class ArrayCalibration:
    """CalibrationData over an in-memory float32 NHWC array."""

    skipped = 0

    def __init__(self, images: np.ndarray):
        self.images = images
        self.total = self.used = len(images)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.total, batch_size):
            yield self.images[start : start + batch_size]

    def identity(self) -> None:
        """An array says nothing of where it came from: its statistics are not cached."""


class PhotoCalibration:
    """CalibrationData over image files: RGB, nearest resize, x/127.5 - 1, decoded batch by batch."""

    skipped = 0

    def __init__(self, files: list[Path], size: int = FLOWERS_SIZE):
        self.files, self.size, self.total = files, size, len(files)
        self.used = self.total

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.total, batch_size):
            yield np.stack([load_photo(f, self.size) for f in self.files[start : start + batch_size]])

    def identity(self) -> None:
        """Not cached (the engine's ImageCalibrationData is)."""


def load_photo(path: Path, size: int = FLOWERS_SIZE) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB").resize((size, size), Image.NEAREST)
    return np.asarray(image, np.float32) / 127.5 - 1.0


def photo_files(root: Path) -> list[Path]:
    """Files of a class-folder dataset, classes sorted, files sorted."""
    return [f for c in sorted(p for p in root.iterdir() if p.is_dir()) for f in sorted(c.iterdir())]


def random_images(count: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype(np.float32)


def save_tiny_keras_model(path: Path, size: int = 16, classes: int = 4) -> Path:
    """A Conv/BN/ReLU/GAP/Dense classifier with non-trivial BN statistics, saved with Keras 3."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    bn = model.layers[2]
    rng = np.random.default_rng(1)
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights(
        [
            gamma * rng.uniform(0.5, 2, 8),
            beta + rng.normal(0, 0.2, 8),
            mean + rng.normal(0, 0.1, 8),
            var * rng.uniform(0.5, 2, 8),
        ]
    )
    model.save(path)
    return path
