"""Decode many images in parallel, streaming in order: threads, or worker processes during model loading.

Threads suffice on their own (Pillow releases the GIL while decoding), but next to `import tensorflow`
they fight it for the GIL: photos decoded beside TensorFlow's import and model load slow both down. `decoding_processes()` forks workers before that import, so the two run side by side.
A file that fails to decode, or that has more pixels than Pillow's decompression-bomb limit, is skipped
with a warning naming it; a run never stops on one bad image.
Worker processes are forked only while forking is safe: no Python thread besides this one, no native
thread started since numpy's (OpenBLAS handles fork), and no TensorFlow / ONNX Runtime loaded.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.common.child import become_child
from engine.common.errors import first_line
from engine.common.threads import spare_cores, usable_cores
from engine.data.preprocess import (
    DECODE_ERRORS,
    ImageSpec,
    ImageTooLarge,
    ResizeTooLarge,
    load_image,
    load_pixels,
)

log = logging.getLogger(__name__)
CHUNK = 32  # images per task sent to a worker process
NATIVE_RUNTIMES = ("tensorflow", "tf_keras", "keras", "onnxruntime", "ai_edge_litert", "torch", "jax")


def _os_thread_count() -> int:
    """Threads of this process as the kernel sees them (native ones included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


_NATIVE_THREADS_AT_IMPORT = _os_thread_count() - threading.active_count()  # numpy's OpenBLAS pool


ImageLoader = Callable[[Path, ImageSpec], np.ndarray]  # load_image or load_pixels


def _load_or_error(path: Path, spec: ImageSpec, load: ImageLoader = load_image) -> np.ndarray | str:
    """The image, or the name of the error that made it unreadable (workers never log: the parent does)."""
    try:
        return load(path, spec)
    except DECODE_ERRORS as exc:
        if isinstance(exc, (ImageTooLarge, Image.DecompressionBombError, Image.DecompressionBombWarning)):
            return f"too many pixels, possible decompression bomb: {first_line(exc, 120)}"
        if isinstance(exc, ResizeTooLarge):
            return first_line(exc, 160)
        return exc.__class__.__name__


def _skipped(path: Path, error: str) -> None:
    log.warning("skipped unreadable image %s (%s)", path, error)


def decode_stream(
    paths: list[Path], spec: ImageSpec, workers: int | None = None, load: ImageLoader = load_image
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yield (index, image or None if unreadable) in order, keeping at most a few images in flight."""
    workers = workers or min(8, usable_cores())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[int, Future[np.ndarray | str]]] = deque()
        for index, path in enumerate(paths):
            pending.append((index, pool.submit(_load_or_error, path, spec, load)))
            if len(pending) >= 4 * workers:
                yield _result(paths, *pending.popleft())
        while pending:
            yield _result(paths, *pending.popleft())


def _result(paths: list[Path], index: int, future: Future[np.ndarray | str]) -> tuple[int, np.ndarray | None]:
    image = future.result()
    if isinstance(image, str):
        _skipped(paths[index], image)
        return index, None
    return index, image


def decode_all(
    paths: list[Path],
    spec: ImageSpec,
    on_progress: Callable[[int, int], None] | None = None,
    processes: Executor | None = None,
    as_pixels: bool = False,
) -> tuple[np.ndarray, list[int]]:
    """Decode every image once into one (N, H, W, C) float32 array of model inputs; also return the kept
    indices. `as_pixels`: when `spec.keeps_pixels`, keep uint8 pixels instead (4x less memory; rescale
    them with `spec.rescale`): the array's dtype says which.
    `processes`: an executor from `decoding_processes()` to decode in (else threads of this process).
    """
    load, dtype = _loader(spec, as_pixels)
    images = np.empty((len(paths), spec.height, spec.width, spec.channels), dtype)
    kept: list[int] = []
    if processes is None:
        for done, (index, image) in enumerate(decode_stream(paths, spec, load=load), start=1):
            if image is not None:
                images[len(kept)] = image
                kept.append(index)
            if on_progress:
                on_progress(done, len(paths))
        return images[: len(kept)], kept
    for start, batch, ok in chunk_results(paths, submit_chunks(paths, spec, processes, as_pixels)):
        images[len(kept) : len(kept) + len(batch)] = batch
        kept.extend(start + offset for offset in ok)
        if on_progress:
            on_progress(min(start + CHUNK, len(paths)), len(paths))
    return images[: len(kept)], kept


Chunks = deque[tuple[int, Future[tuple[np.ndarray, list[int], list[tuple[int, str]]]]]]


def submit_chunks(paths: list[Path], spec: ImageSpec, processes: Executor, as_pixels: bool = False) -> Chunks:
    """Send the decoding of `paths` to `processes` in chunks of `CHUNK` images, in order: (first index, future).
    `as_pixels`: as in `decode_all`."""
    load, dtype = _loader(spec, as_pixels)
    return deque(
        (start, processes.submit(_decode_chunk, paths[start : start + CHUNK], spec, load, dtype))
        for start in range(0, len(paths), CHUNK)
    )


def _loader(spec: ImageSpec, as_pixels: bool) -> tuple[ImageLoader, np.dtype[Any]]:
    """How images are decoded and kept: uint8 pixels when `as_pixels` and `spec.keeps_pixels`, else model inputs."""
    if as_pixels and spec.keeps_pixels:
        return load_pixels, np.dtype(np.uint8)
    return load_image, np.dtype(np.float32)


def chunk_results(paths: list[Path], chunks: Chunks) -> Iterator[tuple[int, np.ndarray, list[int]]]:
    """(first index, decoded images, their offsets) of each chunk in order, unreadable files logged; a chunk taken is
    dropped with its future, so that decoded chunks are not all held until the end."""
    while chunks:
        start, future = chunks.popleft()
        batch, ok, errors = future.result()
        for offset, error in errors:
            _skipped(paths[start + offset], error)
        yield start, batch, ok


def _decode_chunk(
    paths: list[Path], spec: ImageSpec, load: ImageLoader, dtype: np.dtype[Any]
) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """In a worker process: (decoded images stacked, their offsets in `paths`, (offset, error) of the rest)."""
    decoded, ok, errors = [], [], []
    for offset, path in enumerate(paths):
        image = _load_or_error(path, spec, load)
        if isinstance(image, str):
            errors.append((offset, image))
        else:
            decoded.append(image)
            ok.append(offset)
    empty = np.empty((0, spec.height, spec.width, spec.channels), dtype)
    return (np.stack(decoded) if decoded else empty), ok, errors


def fork_is_safe() -> bool:
    """True on Linux while this process runs no other thread that a fork could catch holding a lock."""
    if sys.platform != "linux" or threading.active_count() > 1:
        return False
    if any(name in sys.modules for name in NATIVE_RUNTIMES):
        return False
    return _os_thread_count() - 1 <= _NATIVE_THREADS_AT_IMPORT


@contextlib.contextmanager
def decoding_processes() -> Iterator[Executor | None]:
    """Worker processes for `decode_all`, forked now, before TensorFlow starts threads; None where that is
    not safe (see `fork_is_safe`). Pending work is dropped on error."""
    if not fork_is_safe():
        yield None
        return
    workers = min(8, spare_cores())  # the main process keeps one core
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=become_child)
    try:
        pool.submit(int).result()  # fork the workers now
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
