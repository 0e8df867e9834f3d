"""Hostile images and decoding workers: decompression bombs are skipped and named, never decoded; worker
processes are forked only when that is safe, and leave SIGINT/SIGTERM to the parent."""

import logging
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.common.errors import InputError
from engine.data.calibration import ImageCalibrationData
from engine.data.images import decode_all, decode_stream
from engine.data.preprocess import ImageSpec
from tests.conftest import ROOT

SPEC = ImageSpec(height=8, width=8, channels=3, interpolation="bilinear", scale=1 / 255, offset=0)


def _png(path: Path, width: int, height: int, rows: bool) -> Path:
    """A grayscale PNG declaring width x height; with `rows`, all-black rows (highly compressible), else
    no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(b"\0" * (width + 1)) for _ in range(height)) if rows else b""
    data += packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> list[Path]:
    """[good, tiny file declaring 10 G pixels, 90 M black pixels in 88 kB, good]."""
    folder = tmp_path_factory.mktemp("bombs")
    good = [folder / "a_good.png", folder / "d_good.png"]
    for i, path in enumerate(good):
        Image.new("RGB", (20, 16), (40 * i, 90, 200)).save(path)
    declared = _png(folder / "b_declares_huge.png", 100_000, 100_000, rows=False)
    compressed = _png(folder / "c_compressible.png", 10_000, 9_000, rows=True)
    assert declared.stat().st_size < 100 and compressed.stat().st_size < 200_000
    return [good[0], declared, compressed, good[1]]


def _skipped(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipped unreadable image" in r.getMessage()]


def test_bombs_are_skipped_by_decode_all_and_decode_stream(hostile, caplog):
    with caplog.at_level(logging.WARNING, logger="engine.data.images"):
        images, kept = decode_all(hostile, SPEC)
        streamed = [index for index, image in decode_stream(hostile, SPEC) if image is not None]
    assert kept == streamed == [0, 3] and images.shape == (2, 8, 8, 3)
    messages = _skipped(caplog)
    assert len(messages) == 4  # two files, two decodes
    assert sum("b_declares_huge.png" in m and "decompression bomb" in m for m in messages) == 2
    assert sum("c_compressible.png" in m and "decompression bomb" in m for m in messages) == 2


def test_bombs_are_skipped_by_calibration(hostile, caplog):
    data = ImageCalibrationData(hostile, SPEC, "dataset.quantization_path")
    with caplog.at_level(logging.WARNING, logger="engine.data.images"):
        batches = list(data.batches(8))
    assert [b.shape[0] for b in batches] == [2] and (data.used, data.skipped) == (2, 2)
    only_bombs = ImageCalibrationData(hostile[1:3], SPEC, "dataset.quantization_path")
    with pytest.raises(InputError, match=r"dataset.quantization_path: none of the 2 calibration images"):
        list(only_bombs.batches(8))


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter (nothing but the engine loaded), from the repo root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_bombs_are_skipped_in_worker_processes(hostile):
    result = _fresh_python(f"""
        import logging
        from engine.data.images import decode_all, decoding_processes
        from engine.data.preprocess import ImageSpec
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        spec = ImageSpec(height=8, width=8, channels=3)
        with decoding_processes() as processes:
            assert processes is not None
            images, kept = decode_all({[str(p) for p in hostile]!r}, spec, processes=processes)
        print(kept, images.shape)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 3] (2, 8, 8, 3)"
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped unreadable image")]
    assert len(skipped) == 2 and all("possible decompression bomb" in line for line in skipped)


def test_no_fork_beside_native_threads_or_runtimes():
    result = _fresh_python("""
        import _thread, time
        from engine.data.images import decoding_processes, fork_is_safe
        assert fork_is_safe()
        _thread.start_new_thread(time.sleep, (30,))  # an OS thread the threading module does not know
        time.sleep(0.2)
        assert not fork_is_safe()
        with decoding_processes() as processes:
            assert processes is None
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    result = _fresh_python("""
        from engine.data.images import fork_is_safe
        assert fork_is_safe()
        import onnxruntime  # its thread pools may start at any time
        print(fork_is_safe())
    """)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_workers_ignore_sigint_and_sigterm(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (12, 10), (1, 2, 3)).save(path)
    result = _fresh_python(f"""
        import os, signal, time
        from engine.data.images import decode_all, decoding_processes
        from engine.data.preprocess import ImageSpec
        with decoding_processes() as processes:
            handlers = [processes.submit(signal.getsignal, s).result() for s in (signal.SIGINT, signal.SIGTERM)]
            pid = processes.submit(os.getpid).result()
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGINT)
            time.sleep(0.3)
            images, kept = decode_all([{str(path)!r}] * 40, ImageSpec(8, 8, 3), processes=processes)
        print(handlers == [signal.SIG_IGN, signal.SIG_IGN], pid != os.getpid(), kept == list(range(40)))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


def test_pixel_limit_is_pillows(monkeypatch, tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1999)
    assert decode_all([path], SPEC)[1] == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    assert decode_all([path], SPEC)[1] == [0]
