"""Decode many images in parallel threads (Pillow releases the GIL), streaming in order.

A file that fails to decode is skipped with a warning naming it; a run never stops on one bad image.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from engine.preprocess import ImageSpec, load_image

log = logging.getLogger(__name__)


def _load_or_none(path: Path, spec: ImageSpec) -> np.ndarray | None:
    try:
        return load_image(path, spec)
    except (OSError, ValueError, SyntaxError) as exc:
        log.warning("skipped unreadable image %s (%s)", path, exc.__class__.__name__)
        return None


def decode_stream(paths: list[Path], spec: ImageSpec, workers: int | None = None) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yield (index, image or None if unreadable) in order, keeping at most a few images in flight."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for index, path in enumerate(paths):
            pending.append((index, pool.submit(_load_or_none, path, spec)))
            if len(pending) >= 4 * workers:
                i, future = pending.popleft()
                yield i, future.result()
        while pending:
            i, future = pending.popleft()
            yield i, future.result()


def decode_all(paths: list[Path], spec: ImageSpec, on_progress=None) -> tuple[np.ndarray, list[int]]:
    """Decode every image once into one (N, H, W, C) float32 array; also return the kept indices."""
    images = np.empty((len(paths), spec.height, spec.width, spec.channels), np.float32)
    kept: list[int] = []
    for done, (index, image) in enumerate(decode_stream(paths, spec), start=1):
        if image is not None:
            images[len(kept)] = image
            kept.append(index)
        if on_progress:
            on_progress(done, len(paths))
    return images[: len(kept)], kept
