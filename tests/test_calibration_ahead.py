"""Calibration images decoded ahead (while the model loads) are the very batches a streamed pass yields."""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.data.calibration import ImageCalibrationData
from engine.data.preprocess import ImageSpec
from engine.run import orchestrator
from tests.conftest import ROOT
from tests.test_cli_errors import demo_config, write
from tests.test_images import make_photos


def _photos(folder):
    """11 photos, two of them unreadable: one among the images decoded ahead, one among those decoded on the fly."""
    paths = make_photos(folder, count=11)
    for unreadable in (paths[2], paths[9]):
        unreadable.write_text("not an image")
    return paths


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])  # uint8 pixels kept, or float32 inputs
def test_decoded_ahead_equals_streamed(tmp_path, interpolation):
    paths = _photos(tmp_path)
    spec = ImageSpec(height=8, width=8, channels=3, interpolation=interpolation, scale=1 / 127.5, offset=-1)
    streamed = list(ImageCalibrationData(paths, spec, "photos").batches(3))
    data = ImageCalibrationData(paths, spec, "photos")
    workers = ThreadPoolExecutor(1)  # stands in for `decoding_processes()`
    assert data.decode_ahead(workers, budget=6 * spec.decoded_bytes() + 5) == 6  # 6 of the 11 files
    assert workers._shutdown  # the workers end once their images are decoded
    ahead = list(data.batches(3))
    assert [b.shape for b in ahead] == [b.shape for b in streamed] == [(3, 8, 8, 3)] * 3
    for got, expected in zip(ahead, streamed):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    assert (data.used, data.skipped) == (9, 2)
    again = list(data.batches(3))  # images decoded ahead serve one pass; the next one decodes again
    assert all(np.array_equal(a, b) for a, b in zip(again, streamed)) and (data.used, data.skipped) == (9, 2)


def _run(config: str, out: Path, cache: bool, fresh: bool = True) -> str:
    """`stquant run` of `config` in a fresh process, or in this one (`fresh` False); its run log."""
    argv = ["run", config, "--output-dir", str(out), "--progress", "none", *([] if cache else ["--no-cache"])]
    if fresh:
        code = f"import sys\nfrom engine.cli import main\nsys.exit(main({argv!r}))"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    else:
        assert main(argv) == 0
    return (out / "stquant.log").read_text()


def test_a_first_conversion_decodes_ahead_and_quantizes_as_a_streamed_pass(tmp_path, monkeypatch):
    """A fresh process decodes the demo's calibration images while TensorFlow loads; this process, where forking is
    not safe (TensorFlow loaded), streams them; both make the same model. A second run, whose float graph and statistics
    are cached, does not even ask for decoding processes."""
    config = write(tmp_path, demo_config(tmp_path))
    ahead = _run(config, tmp_path / "ahead", cache=True)
    assert "calibration: decoding 120 images in worker processes while the model loads" in ahead
    import tensorflow  # noqa: F401 - loaded in this process: forking is not safe here

    asked = []
    real = orchestrator.decoding_processes

    @contextlib.contextmanager
    def recorded() -> Iterator[Executor | None]:
        asked.append(True)
        with real() as processes:
            yield processes

    monkeypatch.setattr(orchestrator, "decoding_processes", recorded)
    streamed = _run(config, tmp_path / "streamed", cache=False, fresh=False)
    assert "decoding" not in streamed and asked == [True]  # asked, but no processes where TensorFlow is loaded
    asked.clear()
    cached = _run(config, tmp_path / "cached", cache=True, fresh=False)  # the statistics "ahead" stored
    assert "decoding" not in cached and not asked
    assert json.loads((tmp_path / "cached" / "run_summary.json").read_text())["calibration"]["statistics"] == "cache"
    models = {
        (tmp_path / run / "quantized_models" / "quantized_model.tflite").read_bytes() for run in ("ahead", "streamed")
    }
    assert len(models) == 1
