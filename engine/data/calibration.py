"""Calibration data: one streaming protocol for both quantizers (float32 NHWC batches, preprocessed).

Sources, as the reference picks them: `dataset.quantization_path`, else the whole `dataset.training_path`,
else random images. Random calibration draws random *pixels* (0..255) and pushes them through the same
`x * scale + offset` as real images, unlike the reference's raw U[0, 1) samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.common.errors import InputError
from engine.data.images import CHUNK, Chunks, chunk_results, decode_stream, submit_chunks
from engine.data.preprocess import ImageSpec

Identity = dict[str, Any]  # JSON-able description of a calibration set (part of the statistics cache key)

RANDOM_SAMPLES = 16
AHEAD_BYTES = 32 * 2**20  # decoded images held at most by `ImageCalibrationData.decode_ahead`


class CalibrationData(Protocol):
    """What a quantizer needs: a known number of samples, streamed in batches."""

    source: str  # where the samples come from: a dataset key, or "random"
    total: int

    @property
    def used(self) -> int:
        """Samples the last pass over `batches` yielded."""
        ...

    @property
    def skipped(self) -> int:
        """Files that could not be decoded."""
        ...

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yield float32 (n, H, W, C) arrays, n <= batch_size, `total` samples in all (less the skipped)."""
        ...

    def identity(self) -> Identity | None:
        """What the samples are made of (JSON-able: the files with their sizes and mtimes, the preprocessing, seed
        and split), which the statistics cache keys on; None when the source cannot say (nothing is cached)."""
        ...


class ImageCalibrationData:
    """Images decoded on the fly in parallel; memory does not grow with the number of images."""

    def __init__(self, files: list[Path], spec: ImageSpec, source: str, selection: Identity | None = None):
        """`selection`: how the files were picked (seed, split), part of the identity."""
        self.files = files
        self.spec = spec
        self.source = source
        self.selection = selection or {}
        self.total = len(files)
        self.used = 0
        self.skipped = 0
        self._ahead: tuple[int, Chunks] | None = None

    def identity(self) -> Identity:
        """Each file with its size and mtime (ns), the preprocessing and the selection."""
        files = []
        for path in self.files:
            info = path.stat()
            files.append([str(path.resolve()), info.st_size, info.st_mtime_ns])
        return {"files": files, "spec": asdict(self.spec), **self.selection}

    def decode_ahead(self, processes: Executor, budget: int = AHEAD_BYTES) -> int:
        """Start decoding the first images (as many as `budget` bytes hold) in `processes` (from
        `decoding_processes()`, which end once they are done) while the model loads: the next pass of `batches`
        takes them first, each chunk dropped once taken, then decodes the rest on the fly. Returns how many."""
        count = min(self.total, budget // self.spec.decoded_bytes())
        self._ahead = (count, submit_chunks(self.files[:count], self.spec, processes, as_pixels=True))
        processes.shutdown(wait=False)  # the chunks sent still run; then the workers exit
        return count

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        self.used = self.skipped = 0
        batch: list[np.ndarray] = []
        for image in self._images():
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

    def _images(self) -> Iterator[np.ndarray | None]:
        """Each image (None for an unreadable one): those decoded ahead (for one pass), then the rest, in order."""
        start = 0
        if self._ahead is not None:
            (start, chunks), self._ahead = self._ahead, None
            for first, decoded, ok in chunk_results(self.files, chunks):
                yield from [None] * (min(CHUNK, start - first) - len(ok))
                yield from self.spec.rescale(decoded) if decoded.dtype == np.uint8 else decoded
        for _, image in decode_stream(self.files[start:], self.spec):
            yield image


class RandomCalibrationData:
    """Seeded random pixel images through the configured rescaling (for footprint-only runs)."""

    source = "random"
    skipped = 0

    def __init__(self, spec: ImageSpec, seed: int, total: int = RANDOM_SAMPLES):
        self.spec = spec
        self.seed = seed
        self.total = total
        self.used = 0

    def identity(self) -> Identity:
        return {"random": self.total, "seed": self.seed, "spec": asdict(self.spec)}

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        self.used = 0
        while self.used < self.total:
            n = min(batch_size, self.total - self.used)
            pixels = rng.integers(0, 256, (n, self.spec.height, self.spec.width, self.spec.channels))
            self.used += n
            yield self.spec.rescale(pixels)


class PixelCalibrationData:
    """Calibration images decoded once (`images.decode_all`), for many quantizations: uint8 pixels
    (rescaled batch by batch) or float32 model inputs."""

    def __init__(self, pixels: np.ndarray, spec: ImageSpec, source: str, identity: Identity, skipped: int = 0):
        self.pixels = pixels
        self.spec = spec
        self.source = source
        self.skipped = skipped
        self.total = self.used = len(pixels)
        self._identity = identity

    def identity(self) -> Identity:
        return self._identity

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.total, batch_size):
            batch = self.pixels[start : start + batch_size]
            yield self.spec.rescale(batch) if batch.dtype == np.uint8 else batch


def first_images(calibration: CalibrationData, limit: int, batch_size: int = 16) -> list[np.ndarray]:
    """The first `limit` calibration images (fewer if there are fewer), as a list of batches."""
    batches: list[np.ndarray] = []
    count = 0
    for batch in calibration.batches(batch_size):
        batches.append(batch[: limit - count])
        count += len(batches[-1])
        if count >= limit:
            break
    return batches
