"""What both quantizers share: the progress callback, the result, the memo of a caller that quantizes one model
several ways, and helpers over calibration data."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.common.errors import ConfigError, shorten
from engine.data.calibration import CalibrationData, Identity
from engine.models.library_internals import layer_of_node
from engine.models.load import KerasModel
from engine.models.trace import Trace
from engine.optimize import LastOptimized

ProgressCallback = Callable[[int, int], None]


@dataclass
class QuantResult:
    """The quantized model written (or the input returned unchanged) and notes for the run log.

    `optimization`: what `quantization.optimize`/`bias_correction` did (None when off).
    `float_model`: the float model the quantized one was made from, for `engine.evaluation.layer_report`:
    the Keras model converted to TFLite (in memory, optimized if asked) or the float ONNX file
    that was quantized; None when nothing was quantized.
    `float_tflite`: the float32 .tflite the TFLite converter calibrated, when that is the user's model
    unchanged (neither `optimize` nor `bias_correction` changed it), for evaluating the float model
    without a second conversion.
    `calibration_images`/`calibration_skipped`: the images the ranges were measured on and the calibration
    files that could not be decoded (from the cache entry when the ranges came from the cache).
    `statistics_cached`: the calibration ranges came from the statistics cache.
    `quantized_cached`: the quantized model itself came from the statistics cache (TFLite converter: not converted).
    """

    model_path: Path
    notes: list[str] = field(default_factory=list)
    calibration_images: int = 0
    seconds: float = 0.0
    optimization: dict[str, Any] | None = None
    float_model: KerasModel | Path | None = None
    float_tflite: bytes | None = None
    statistics_cached: bool = False
    calibration_skipped: int = 0
    quantized_cached: bool = False


@dataclass
class ModelMemo:
    """What quantizing one loaded Keras model several ways reuses (`stquant compare`, `recover`): the last optimized
    model, the last traced serving function and the last ONNX conversion. Held and passed by the caller, so no model outlives the caller's use."""

    optimized: LastOptimized = field(default_factory=LastOptimized)
    trace: Trace | None = None  # the last model traced, by either quantizer or the float model's conversion
    onnx: tuple[KerasModel | Path, int, bytes] | None = None  # (model or its file, opset, its tf2onnx conversion)


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of these distributions (part of a statistics cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in distributions:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "none"
    return found


class FirstImages:
    """Calibration data that keeps copies of the first `limit` images its quantizer reads (one batch, as
    `engine.data.calibration.first_images(calibration, limit, limit)` returns them): the per-layer report takes them
    instead of decoding them again. Its counts and identity are the wrapped data's."""

    def __init__(self, calibration: CalibrationData, limit: int) -> None:
        self.calibration, self.limit = calibration, limit
        self.source, self.total = calibration.source, calibration.total
        self.first: list[np.ndarray] | None = None  # set once a pass has read `limit` images, or all of them

    @property
    def used(self) -> int:
        return self.calibration.used

    @property
    def skipped(self) -> int:
        return self.calibration.skipped

    def identity(self) -> Identity | None:
        return self.calibration.identity()

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        kept: list[np.ndarray] = []
        count = 0
        for batch in self.calibration.batches(batch_size):
            if self.first is None:
                kept.append(batch[: self.limit - count].copy())
                count += len(kept[-1])
                if count >= self.limit:
                    self.first = [np.concatenate(kept)]
            yield batch
        if self.first is None and kept:
            self.first = [np.concatenate(kept)]


def counted_batches(
    calibration: CalibrationData, batch_size: int, on_progress: ProgressCallback | None
) -> Iterator[np.ndarray]:
    """Yield calibration batches, reporting (images_done, total) after each one."""
    done = 0
    for batch in calibration.batches(batch_size):
        yield batch
        done += len(batch)
        if on_progress is not None:
            on_progress(done, calibration.total)


def nodes_of_layers(nodes: list[str], layers: list[str], keras3: bool, model_name: str) -> list[str]:
    """The `nodes` (graph node or op output names) of `layers` (`quantization.float_layers`), the layers named as the
    per-layer report and the footprint name them (`layer_of_node`); ConfigError naming a layer that is not there."""
    by_layer: dict[str, list[str]] = {}
    for node in nodes:
        by_layer.setdefault(layer_of_node(node, keras3), []).append(node)
    missing = [layer for layer in layers if layer not in by_layer]
    if missing:
        raise ConfigError(
            f"quantization.float_layers: {shorten(missing[0])!r} is not a layer of {model_name} "
            f"(its layers: {shorten(', '.join(by_layer), 200)})"
        )
    return [node for layer in layers for node in by_layer[layer]]
