"""Nearest resizing through Pillow picks exactly the pixels of floor((i + 0.5) * scale) in float32."""

import numpy as np
import pytest
from PIL import Image

from engine.data.preprocess import _nearest_index, _pillow_picks, _resample

MODES = {"L": 1, "RGB": 3, "RGBA": 4}


def _picked(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """The reference: rows, then columns, at the float32 sample positions."""
    return np.take(
        np.take(pixels, _nearest_index(pixels.shape[0], height), axis=0), _nearest_index(pixels.shape[1], width), axis=1
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_nearest_resize_same_pixels_as_the_float32_positions(mode: str) -> None:
    rng = np.random.default_rng(7)
    through_pillow = through_numpy = 0
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 400, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 300, 2))
        pixels = rng.integers(0, 256, (height, width, MODES[mode]), dtype=np.uint8)
        image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
        got = _resample(image, out_w, out_h, "nearest")
        assert got.dtype == np.uint8 and got.shape == (out_h, out_w, MODES[mode])
        assert np.array_equal(got, _picked(pixels, out_h, out_w)), f"{mode} {width}x{height} -> {out_w}x{out_h}"
        if _pillow_picks(width, out_w) and _pillow_picks(height, out_h):
            through_pillow += 1
        else:
            through_numpy += 1
    assert through_pillow > 50 and through_numpy > 50, (through_pillow, through_numpy)


def test_pillow_is_asked_where_its_float64_steps_round_the_other_way() -> None:
    disagree = [
        (size_in, size_out)
        for size_in in range(1, 500)
        for size_out in (96, 224)
        if not _pillow_picks(size_in, size_out)
    ]
    assert disagree, "Pillow picks the float32 positions for every size: the numpy path is never taken"
    for size_in, size_out in disagree[:20]:
        line = Image.fromarray(np.arange(size_in, dtype=np.int32)[None], "I")
        picked = np.asarray(line.resize((size_out, 1), Image.Resampling.NEAREST))[0]
        assert not np.array_equal(picked, _nearest_index(size_in, size_out)), (size_in, size_out)
    assert _pillow_picks(320, 128) and _pillow_picks(215, 128)
