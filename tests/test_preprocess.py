"""Decoding and preprocessing: every colour mode, interpolation and aspect-ratio rule, against TensorFlow."""

import numpy as np
import pytest
from PIL import Image

from engine.data.preprocess import ImageSpec, load_image, resize

METHODS = ["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"]


def gradient(width=64, height=40) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    return Image.fromarray(np.concatenate([x + 0 * y, y + 0 * x, 255 - x + 0 * y], axis=2).astype(np.uint8))


@pytest.mark.parametrize("method", METHODS)
def test_resize_matches_tensorflow(method):
    tf = pytest.importorskip("tensorflow")
    image = gradient()
    for height, width in [(16, 24), (48, 96)]:
        ours = resize(image, ImageSpec(height, width, 3, method))
        ref = tf.image.resize(np.asarray(image, np.float32)[None], (height, width), method=method).numpy()[0]
        assert ours.shape == (height, width, 3)
        assert np.abs(ours - ref).max() < 1.0  # of 255


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "CMYK", "P", "I;16", "LA", "1"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_pillow_mode_is_converted(tmp_path, mode, channels):
    image = (
        gradient().convert(mode)
        if mode != "I;16"
        else Image.fromarray((np.arange(64 * 40).reshape(40, 64) * 25).astype(np.uint16))
    )
    path = tmp_path / ("x.tiff" if mode in ("I;16", "CMYK") else "x.png")
    image.save(path)
    out = load_image(path, ImageSpec(8, 8, channels, "bilinear", "fit", 1 / 255, 0))
    assert out.shape == (8, 8, channels) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1.0 + 1e-6


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "white.png")
    assert load_image(tmp_path / "white.png", ImageSpec(4, 4, 1, "nearest")).max() == 255


def test_scale_and_offset():
    spec = ImageSpec(2, 2, 3, scale=1 / 127.5, offset=-1)
    np.testing.assert_allclose(spec.rescale(np.array([0, 127.5, 255])), [-1, 0, 1], atol=1e-6)


def test_crop_keeps_aspect_ratio_and_centre():
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 255, 0), (100, 0, 200, 100))  # green centre third
    out = resize(image, ImageSpec(10, 10, 3, "nearest", "crop"))
    assert out.shape == (10, 10, 3)
    assert (out[..., 1] == 255).all()  # only the centre square survives


def test_padding_letterboxes_with_black():
    out = resize(Image.new("RGB", (200, 100), (255, 255, 255)), ImageSpec(20, 20, 3, "nearest", "padding"))
    assert (out[:5] == 0).all() and (out[-5:] == 0).all() and (out[5:15] == 255).all()


def test_non_square_input_is_height_by_width():
    out = resize(gradient(64, 40), ImageSpec(12, 30, 3, "bilinear", "fit"))
    assert out.shape == (12, 30, 3)
    assert out[0, 0, 0] < out[0, -1, 0]  # red grows with x: width was not swapped with height


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    out = load_image(tmp_path / "a.gif", ImageSpec(8, 8, 3, "nearest"))
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


# Max difference in grey levels (of 255) from tf.image.resize on flower photos (measured: under 0.012 for
# area, under 3e-4 for the others; nearest picks the same pixels).
PHOTO_BOUNDS = dict.fromkeys(METHODS, 0.02) | {"nearest": 0.0}
PHOTO_SIZES = [(128, 128), (96, 160), (37, 53), (300, 200), (480, 640)]  # down, non-square, odd, up


@pytest.mark.parametrize("method", METHODS)
def test_resize_matches_tensorflow_on_photos(method, flower_photos):
    tf = pytest.importorskip("tensorflow")
    photos = [sorted(folder.glob("*.jpg"))[0] for folder in sorted(flower_photos.iterdir()) if folder.is_dir()]
    assert len(photos) == 5
    worst = 0.0
    for path in photos:
        image = Image.open(path).convert("RGB")
        for height, width in PHOTO_SIZES:
            ours = resize(image, ImageSpec(height, width, 3, method)).astype(np.float32)
            ref = tf.image.resize(np.asarray(image)[None], (height, width), method=method).numpy()[0]
            assert ours.shape == ref.shape == (height, width, 3)
            worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst <= PHOTO_BOUNDS[method]
