"""Decoding many images: threads and worker processes give the same array; unreadable files are named."""

import logging
import threading

import numpy as np
from PIL import Image

from engine.data.images import decode_all, decoding_processes, fork_is_safe
from engine.data.preprocess import ImageSpec

SPEC = ImageSpec(height=8, width=8, channels=3, interpolation="bilinear", scale=1 / 127.5, offset=-1)


def make_photos(folder, count=70):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (20 + i % 5, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    if count > 40:
        paths[40].write_text("not an image")  # in the second chunk sent to a worker
    return paths


def test_worker_processes_decode_like_threads(tmp_path, caplog):
    paths = make_photos(tmp_path)
    threaded, kept = decode_all(paths, SPEC)
    progress = []
    caplog.clear()
    safe = fork_is_safe()
    with caplog.at_level(logging.WARNING, logger="engine.data.images"), decoding_processes() as processes:
        assert (processes is not None) == safe
        forked, forked_kept = decode_all(
            paths, SPEC, on_progress=lambda done, total: progress.append(done), processes=processes
        )
    assert kept == forked_kept == [i for i in range(70) if i != 40]
    np.testing.assert_array_equal(forked, threaded)
    assert progress[-1] == 70
    assert sum("040.png" in r.getMessage() for r in caplog.records) == 1  # logged once, by the parent


def test_decoded_chunks_are_freed_once_copied(tmp_path):
    """An executor's decoded chunks are dropped as they are copied into the result: decoding never holds the
    images twice (measured with tracemalloc, which sees numpy's arrays; a thread stands in for a worker process)."""
    import tracemalloc
    from concurrent.futures import ThreadPoolExecutor

    paths = make_photos(tmp_path, count=640)  # 20 chunks
    spec = ImageSpec(height=32, width=32, channels=3, interpolation="bilinear", scale=1 / 127.5, offset=-1)
    with ThreadPoolExecutor(1) as worker:
        decode_all(paths[:41], spec, processes=worker)  # the lazy imports of decoding and of its warning first
        tracemalloc.start()
        try:
            images, kept = decode_all(paths, spec, processes=worker)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(kept) == 639 and images.nbytes == 639 * 32 * 32 * 3 * 4
    assert peak < 1.5 * images.nbytes, (peak, images.nbytes)  # all chunks held until the end: twice the images


def test_no_worker_processes_beside_other_threads():
    started = threading.Event()
    stop = threading.Event()
    thread = threading.Thread(target=lambda: (started.set(), stop.wait()))
    thread.start()
    started.wait()
    try:
        with decoding_processes() as processes:
            assert processes is None  # forking beside running threads is not safe
    finally:
        stop.set()
        thread.join()


def test_pixels_are_kept_as_uint8_only_for_nearest_resizing(tmp_path):
    paths = make_photos(tmp_path, count=5)
    nearest = ImageSpec(
        height=8, width=8, channels=3, interpolation="nearest", aspect_ratio="padding", scale=1 / 127.5, offset=-1
    )
    pixels, kept = decode_all(paths, nearest, as_pixels=True)
    images, same = decode_all(paths, nearest)
    assert pixels.dtype == np.uint8 and images.dtype == np.float32 and kept == same
    np.testing.assert_array_equal(nearest.rescale(pixels), images)  # padding included
    bilinear, _ = decode_all(paths, SPEC, as_pixels=True)  # resampling makes new values: model inputs
    np.testing.assert_array_equal(bilinear, decode_all(paths, SPEC)[0])
