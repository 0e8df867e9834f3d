"""Decode and preprocess one image exactly as the config asks: Pillow decode, resize, rescale.

`aspect_ratio`: `fit` stretches to the model size; `crop` keeps the aspect ratio, resizes the short side
and centre-crops (what the reference documents; it crops at native resolution instead); `padding`
letterboxes with black; `full_screen` stretches like `fit`. Resizing matches `tf.image.resize` (which
trained the model zoo's models; on photos within the bounds of tests/test_preprocess.py, nearest exact): separable numpy kernels
with half-pixel centres and no antialiasing, as TensorFlow's default, taps outside the image dropped,
sample positions in float32 as TensorFlow computes them; `area` averages the exact pixel overlap;
`nearest` picks floor((i + 0.5) * scale).
An image of more pixels than Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, 89.5 M) is
refused before it is decoded (ImageTooLarge), never decoded into memory; an image whose resizing would need
more than MAX_RESIZE_BYTES of working memory (a 10000x1 strip cropped to a square) is refused (ResizeTooLarge).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

from engine.common.errors import ConfigError

_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS
MAX_RESIZE_BYTES = 2 << 30  # working memory one resize may take (weight matrices and intermediate images)


class ImageTooLarge(ValueError):
    """The image declares more pixels than the decompression-bomb limit."""


class ResizeTooLarge(ValueError):
    """Resizing the image as the config asks would take more than MAX_RESIZE_BYTES."""


# What decoding one file may raise: the file is then skipped (with a warning naming it).
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
COLOR_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


class RescalingSection(Protocol):
    """`preprocessing.rescaling` of the config (engine.config.schema.Rescaling)."""

    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float: ...


class ResizingSection(Protocol):
    """`preprocessing.resizing` of the config (engine.config.schema.Resizing)."""

    @property
    def interpolation(self) -> str: ...
    @property
    def aspect_ratio(self) -> str: ...


class PreprocessingSection(Protocol):
    """The config's `preprocessing` section (engine.config.schema.Preprocessing), as far as images need it."""

    @property
    def color_mode(self) -> str: ...
    @property
    def resizing(self) -> ResizingSection: ...
    @property
    def rescaling(self) -> RescalingSection | None: ...


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to turn an image file into one model input (H, W, C float32)."""

    height: int
    width: int
    channels: int
    interpolation: str = "bilinear"
    aspect_ratio: str = "fit"
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def from_config(cls, preprocessing: PreprocessingSection, height: int, width: int) -> ImageSpec:
        """Build from the config's `preprocessing` section and the model's input size."""
        rescaling = preprocessing.rescaling
        if rescaling is None:  # engine.config.modes requires it for every mode stquant runs
            raise ConfigError("preprocessing.rescaling: required (scale and offset)")
        return cls(
            height=height,
            width=width,
            channels=COLOR_CHANNELS[preprocessing.color_mode],
            interpolation=preprocessing.resizing.interpolation,
            aspect_ratio=preprocessing.resizing.aspect_ratio,
            scale=rescaling.scale,
            offset=rescaling.offset,
        )

    @property
    def keeps_pixels(self) -> bool:
        """Resizing only picks source pixels (nearest): images can be kept as uint8 and rescaled later."""
        return self.interpolation == "nearest"

    def decoded_bytes(self) -> int:
        """Bytes of one image as `images.decode_all(..., as_pixels=True)` keeps it (uint8 pixels or float32)."""
        return self.height * self.width * self.channels * (1 if self.keeps_pixels else 4)

    def rescale(self, pixels: np.ndarray) -> np.ndarray:
        """Apply `x * scale + offset` in float32."""
        return pixels.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)


def load_image(path: Path, spec: ImageSpec) -> np.ndarray:
    """Decode, convert, resize and rescale one image file to (H, W, C) float32. Raises OSError/ValueError."""
    return spec.rescale(load_pixels(path, spec))


def load_pixels(path: Path, spec: ImageSpec) -> np.ndarray:
    """Decode, convert and resize, not rescaled: (H, W, C) uint8 if `spec.keeps_pixels`, else float32.
    Raises one of DECODE_ERRORS (ImageTooLarge above the pixel limit)."""
    _bomb_warnings_are_errors()
    with Image.open(path) as image:
        limit = Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS
        if image.width * image.height > limit:
            raise ImageTooLarge(f"{image.width}x{image.height} pixels, over the limit of {limit}")
        image.seek(0)
        return resize(_to_mode(image, spec.channels), spec)


def _bomb_warnings_are_errors() -> None:
    """Pillow only warns (and would decode) between 1x and 2x its pixel limit: make that warning an error,
    raised inside `Image.open` before decoding, instead of a line on stderr (set once per process)."""
    if not any(f[0] == "error" and f[2] is Image.DecompressionBombWarning for f in warnings.filters):
        warnings.simplefilter("error", Image.DecompressionBombWarning)


def resize(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """Resize a decoded image to the spec's size following `aspect_ratio`; returns (H, W, C) pixels
    (uint8 for `nearest`, float32 otherwise)."""
    w, h = image.size
    if spec.aspect_ratio == "crop":
        factor = max(spec.width / w, spec.height / h)
    elif spec.aspect_ratio == "padding":
        factor = min(spec.width / w, spec.height / h)
    else:
        return _resample(image, spec.width, spec.height, spec.interpolation)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    scaled = _resample(image, new_w, new_h, spec.interpolation)
    if spec.aspect_ratio == "crop":
        top, left = (new_h - spec.height) // 2, (new_w - spec.width) // 2
        return scaled[top : top + spec.height, left : left + spec.width]
    canvas = np.zeros((spec.height, spec.width, scaled.shape[2]), scaled.dtype)
    top, left = (spec.height - new_h) // 2, (spec.width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = scaled
    return canvas


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow mode (palette, CMYK, 16-bit, float, LA...) to L, RGB or RGBA."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = values.max() if values.size else 0
        if peak > 255:
            values = values * (255.0 / (65535.0 if peak <= 65535 else peak))
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == _PIL_MODES[channels]:
        return image
    return ImageOps.grayscale(image) if channels == 1 else image.convert(_PIL_MODES[channels])


def _resample(image: Image.Image, width: int, height: int, method: str) -> np.ndarray:
    _check_resize_memory(image, width, height)
    if method == "nearest" and _pillow_picks(image.width, width) and _pillow_picks(image.height, height):
        image = image.resize((width, height), Image.Resampling.NEAREST)  # the same pixels, fewer to copy out
    pixels = np.asarray(image)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if method == "nearest":  # pick the pixels first (rows, then columns: faster than one 2-D gather)
        if pixels.shape[:2] == (height, width):
            return pixels
        rows = _nearest_index(pixels.shape[0], height)
        cols = _nearest_index(pixels.shape[1], width)
        return np.take(np.take(pixels, rows, axis=0), cols, axis=1)
    pixels = pixels.astype(np.float32)
    if method == "area":
        rows, cols = _area_weights(pixels.shape[0], height), _area_weights(pixels.shape[1], width)
    else:
        kernel = _KERNELS[method]
        rows, cols = _kernel_weights(pixels.shape[0], height, kernel), _kernel_weights(pixels.shape[1], width, kernel)
    out = np.tensordot(rows, pixels, axes=(1, 0))
    return np.tensordot(cols, out, axes=(1, 1)).swapaxes(0, 1).astype(np.float32)


def _check_resize_memory(image: Image.Image, width: int, height: int) -> None:
    """ResizeTooLarge when the float64 weight matrices and float32 intermediate images of resizing `image` to
    width x height would exceed MAX_RESIZE_BYTES (the decoded pixels themselves are bounded by the pixel limit)."""
    w, h, c = image.width, image.height, len(image.getbands())
    needed = 8 * (height * h + width * w) + 4 * c * (height * w + height * width)
    if needed > MAX_RESIZE_BYTES:
        raise ResizeTooLarge(
            f"resizing {w}x{h} to {width}x{height} would need {needed / 2**30:.1f} GiB, over the "
            f"{MAX_RESIZE_BYTES / 2**30:.0f} GiB bound"
        )


@functools.lru_cache(maxsize=1024)
def _pillow_picks(size_in: int, size_out: int) -> bool:
    """Whether Pillow's nearest resize from `size_in` to `size_out` picks the `_nearest_index` pixels: Pillow
    steps through its sample positions in float64, which may round a boundary the other way. Asked of Pillow itself,
    on a line of pixels numbered 0..size_in - 1."""
    if size_in > 2**24:  # beyond float32's exact integers
        return False
    line = Image.fromarray(np.arange(size_in, dtype=np.int32)[None], "I")
    picked = np.asarray(line.resize((size_out, 1), Image.Resampling.NEAREST))[0]
    return bool(np.array_equal(picked, _nearest_index(size_in, size_out)))


def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """floor((i + 0.5) * scale) in float32, as TensorFlow computes it (float64 differs on exact boundaries)."""
    scale = np.float32(size_in) / np.float32(size_out)
    centres = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale
    index: np.ndarray = np.minimum(np.floor(centres).astype(int), size_in - 1)  # a ufunc's result is untyped
    return index


def _triangle(x: np.ndarray) -> np.ndarray:
    weights: np.ndarray = np.maximum(0.0, 1.0 - np.abs(x))  # a ufunc's result is untyped
    return weights


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    a, x = -0.5, np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, ((x - 5) * x + 8) * x * a - 4 * a, 0.0))


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


def _lanczos5(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 5, np.sinc(x) * np.sinc(x / 5), 0.0)


def _gaussian(x: np.ndarray) -> np.ndarray:
    sigma = 0.5  # TensorFlow's gaussian kernel: radius 1.5, sigma 1.5 / 3
    return np.where(np.abs(x) < 1.5, np.exp(-(x * x) / (2 * sigma * sigma)), 0.0)


def _mitchell(x: np.ndarray) -> np.ndarray:
    b = c = 1.0 / 3.0
    x = np.abs(x)
    near = ((12 - 9 * b - 6 * c) * x**3 + (-18 + 12 * b + 6 * c) * x**2 + (6 - 2 * b)) / 6
    far = ((-b - 6 * c) * x**3 + (6 * b + 30 * c) * x**2 + (-12 * b - 48 * c) * x + (8 * b + 24 * c)) / 6
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


Kernel = Callable[[np.ndarray], np.ndarray]  # weight of a tap at each distance (in pixels) from the sample
_KERNELS: dict[str, Kernel] = {
    "bilinear": _triangle,
    "bicubic": _keys_cubic,
    "lanczos3": _lanczos3,
    "lanczos5": _lanczos5,
    "gaussian": _gaussian,
    "mitchellcubic": _mitchell,
}


def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix of the exact overlap of each output pixel with each input pixel."""
    scale = size_in / size_out
    start = np.arange(size_out)[:, None] * scale
    taps = np.arange(size_in)[None, :]
    overlap = np.clip(np.minimum(start + scale, taps + 1) - np.maximum(start, taps), 0, None)
    weights: np.ndarray = overlap / overlap.sum(axis=1, keepdims=True)  # a ufunc's result is untyped
    return weights


def _kernel_weights(size_in: int, size_out: int, kernel: Kernel) -> np.ndarray:
    """(size_out, size_in) resampling matrix with half-pixel centres; taps outside the image are dropped
    and the rest renormalised, as TensorFlow does (for the triangle that equals repeating the edge)."""
    # Sample positions in float32 as TensorFlow computes them (that decides which taps a kernel's edge
    # reaches): ResizeBilinear/ResizeBicubic scale by in/out, ScaleAndTranslate (the others) by 1 / (out/in).
    size_in32, size_out32 = np.float32(size_in), np.float32(size_out)
    scale = size_in32 / size_out32 if kernel in (_triangle, _keys_cubic) else np.float32(1) / (size_out32 / size_in32)
    samples = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale
    offsets = np.arange(-6, 7)
    taps = np.floor(samples - np.float32(0.5))[:, None] + offsets[None, :]
    distances = (taps.astype(np.float32) + np.float32(0.5) - samples[:, None]).astype(np.float64)
    if kernel is _keys_cubic:  # ResizeBicubic reads its weights from a table of 1024 sub-pixel positions
        position = samples - np.float32(0.5)
        fraction = np.rint((position - np.floor(position)) * 1024) / 1024
        distances = (taps - np.floor(position)[:, None]) - fraction[:, None]
    values = np.where((taps >= 0) & (taps < size_in), kernel(distances), 0.0)
    weights = np.zeros((size_out, size_in))
    np.add.at(
        weights,
        (np.repeat(np.arange(size_out), offsets.size), np.clip(taps, 0, size_in - 1).astype(int).ravel()),
        values.ravel(),
    )
    total = weights.sum(axis=1, keepdims=True)
    return weights / np.where(total == 0, 1, total)
