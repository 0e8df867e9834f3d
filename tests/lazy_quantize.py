"""One TFLite quantization of a Keras file through a LazyKerasModel and the statistics cache of $XDG_CACHE_HOME:
what asked for the Keras model, and whether the Keras 2 package (which loads the demo .h5) is imported by then.

Imports nothing that loads Keras, so a fresh process that runs it shows what the quantization itself imported.
"""

import sys
from pathlib import Path

from engine.data.calibration import ImageCalibrationData
from engine.data.preprocess import ImageSpec
from engine.models.load import LazyKerasModel
from engine.quantize.cache import StatsCache
from engine.quantize.tflite import quantize_tflite
from tests.test_quantize_tflite import settings


def quantize(model: Path, images: Path, granularity: str, out: Path) -> dict:
    """Quantize `model` calibrated on 40 of the demo's digit images; what the LazyKerasModel saw."""
    files = sorted(images.glob("*/*.png"))[:40]
    spec = ImageSpec(32, 32, 3, interpolation="nearest", scale=1 / 127.5, offset=-1.0)
    lazy = LazyKerasModel(model)
    result = quantize_tflite(
        model,
        ImageCalibrationData(files, spec, "test", {"seed": 0, "split": 1.0}),
        settings(granularity=granularity),
        out,
        model=lazy,
        cache=StatsCache(),
    )
    return {
        "needed_by": lazy.needed_by,
        "tf_keras": "tf_keras" in sys.modules,
        "cached": result.statistics_cached,
        "float_model_is_lazy": result.float_model is lazy,
    }
