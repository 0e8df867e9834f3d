"""Decode and preprocess one image exactly as the config asks: Pillow decode, resize, rescale.

`aspect_ratio`: `fit` stretches to the model size; `crop` keeps the aspect ratio, resizes the short side
and centre-crops (what the reference documents; it crops at native resolution instead); `padding`
letterboxes with black; `full_screen` stretches like `fit`. Pillow provides bilinear, nearest, bicubic,
area (box) and lanczos3; gaussian, mitchellcubic and lanczos5 are separable numpy kernels below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

_PIL_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos3": Image.Resampling.LANCZOS,
}
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
COLOR_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


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
    def from_config(cls, preprocessing, height: int, width: int) -> "ImageSpec":
        """Build from the config's `preprocessing` section and the model's input size."""
        return cls(
            height=height,
            width=width,
            channels=COLOR_CHANNELS[preprocessing.color_mode],
            interpolation=preprocessing.resizing.interpolation,
            aspect_ratio=preprocessing.resizing.aspect_ratio,
            scale=preprocessing.rescaling.scale,
            offset=preprocessing.rescaling.offset,
        )

    def rescale(self, pixels: np.ndarray) -> np.ndarray:
        """Apply `x * scale + offset` in float32."""
        return pixels.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)


def load_image(path: Path, spec: ImageSpec) -> np.ndarray:
    """Decode, convert, resize and rescale one image file to (H, W, C) float32. Raises OSError/ValueError."""
    with Image.open(path) as image:
        image.seek(0)
        pixels = _to_mode(image, spec.channels)
    return spec.rescale(resize(pixels, spec))


def resize(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """Resize a decoded image to the spec's size following `aspect_ratio`; returns (H, W, C) float32."""
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
        return scaled[top:top + spec.height, left:left + spec.width]
    canvas = np.zeros((spec.height, spec.width, scaled.shape[2]), np.float32)
    top, left = (spec.height - new_h) // 2, (spec.width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = scaled
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
    return ImageOps.grayscale(image) if channels == 1 and image.mode != "L" else image.convert(_PIL_MODES[channels])


def _resample(image: Image.Image, width: int, height: int, method: str) -> np.ndarray:
    if method in _PIL_FILTERS:
        out = np.asarray(image.resize((width, height), _PIL_FILTERS[method]), dtype=np.float32)
    else:
        out = _separable_resize(np.asarray(image, dtype=np.float32), width, height, _KERNELS[method])
    return out[..., None] if out.ndim == 2 else out


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


_KERNELS = {"lanczos5": _lanczos5, "gaussian": _gaussian, "mitchellcubic": _mitchell}


def _weights(size_in: int, size_out: int, kernel) -> np.ndarray:
    """(size_out, size_in) resampling matrix with half-pixel centres, widened when downscaling."""
    scale = size_in / size_out
    stretch = max(scale, 1.0)
    centres = (np.arange(size_out) + 0.5) * scale - 0.5
    taps = np.arange(size_in)
    weights = kernel((taps[None, :] - centres[:, None]) / stretch)
    total = weights.sum(axis=1, keepdims=True)
    return weights / np.where(total == 0, 1, total)


def _separable_resize(pixels: np.ndarray, width: int, height: int, kernel) -> np.ndarray:
    rows = _weights(pixels.shape[0], height, kernel)
    cols = _weights(pixels.shape[1], width, kernel)
    out = np.tensordot(rows, pixels, axes=(1, 0))
    out = np.tensordot(cols, out, axes=(1, 1)).swapaxes(0, 1)
    return np.clip(out, 0, 255).astype(np.float32)
