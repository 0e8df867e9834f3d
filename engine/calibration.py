"""Calibration data: one streaming protocol for both quantizers (float32 NHWC batches, preprocessed).

Sources, as the reference picks them: `dataset.quantization_path`, else the whole `dataset.training_path`,
else random images. Random calibration draws random *pixels* (0..255) and pushes them through the same
`x * scale + offset` as real images, unlike the reference's raw U[0, 1) samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.errors import InputError
from engine.images import decode_stream
from engine.preprocess import ImageSpec

RANDOM_SAMPLES = 16


class CalibrationData(Protocol):
    """What a quantizer needs: a known number of samples, streamed in batches."""

    total: int

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yield float32 (n, H, W, C) arrays, n <= batch_size, `total` samples in all."""
        ...


class ImageCalibrationData:
    """Images decoded on the fly in parallel; memory does not grow with the number of images."""

    def __init__(self, files: list[Path], spec: ImageSpec, source: str):
        self.files = files
        self.spec = spec
        self.source = source
        self.total = len(files)
        self.used = 0
        self.skipped = 0

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        self.used = self.skipped = 0
        batch: list[np.ndarray] = []
        for _, image in decode_stream(self.files, self.spec):
            if image is None:
                self.skipped += 1
                continue
            batch.append(image)
            if len(batch) == batch_size:
                self.used += len(batch)
                yield np.stack(batch)
                batch = []
        if batch:
            self.used += len(batch)
            yield np.stack(batch)
        if self.used == 0:
            raise InputError(f"{self.source}: none of the {self.total} calibration images could be decoded")


class RandomCalibrationData:
    """Seeded random pixel images through the configured rescaling (for footprint-only runs)."""

    source = "random"
    skipped = 0

    def __init__(self, spec: ImageSpec, seed: int, total: int = RANDOM_SAMPLES):
        self.spec = spec
        self.seed = seed
        self.total = total
        self.used = 0

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        self.used = 0
        while self.used < self.total:
            n = min(batch_size, self.total - self.used)
            pixels = rng.integers(0, 256, (n, self.spec.height, self.spec.width, self.spec.channels))
            self.used += n
            yield self.spec.rescale(pixels)
