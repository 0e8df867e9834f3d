"""Benchmark: peak memory of the ONNX quantizer's calibration methods (MinMax, Entropy, Percentile).

Each method quantizes the NCHW flowers ONNX model on the 300 shared photos in its own child process;
the table prints peak RSS and wall time, and each method's difference to MinMax (the bound to keep:
MinMax + 300 MB, whatever the number of images).
usage: python benchmarks/calibration_memory.py [--repeat N]
"""

import statistics
import sys
import tempfile

from measure import measure, repeat_count
from tutorial import PHOTOS, ROOT, SHARED

ONNX_MODEL = SHARED / "assets/models/flowers_onnx/mobilenet_v2_0.35_128_tfs_channel_first.onnx"
QUANTIZE = """
import sys
from pathlib import Path
from engine.config.schema import Quantization
from engine.data.calibration import ImageCalibrationData
from engine.data.dataset import scan
from engine.data.preprocess import ImageSpec
from engine.quantize.onnx import quantize_onnx
model, photos, method, out = sys.argv[1:]
files = scan(Path(photos), None, "photos").files
calibration = ImageCalibrationData(files, ImageSpec(128, 128, 3, "nearest", "fit", 1 / 127.5, -1), "photos")
settings = Quantization(quantizer="Onnx_quantizer", calibration_method=method)
quantize_onnx(Path(model), calibration, settings, Path(out) / "export", Path(out) / "work")
"""


def main() -> None:
    repeat = repeat_count(ONNX_MODEL)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("minmax", "entropy", "percentile"):
            runs = [
                measure(
                    [sys.executable, "-c", QUANTIZE, str(ONNX_MODEL), str(PHOTOS), method, f"{tmp}/{method}{i}"],
                    cwd=ROOT,
                )
                for i in range(repeat)
            ]
            results[method] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    base = results["minmax"][1]
    print(f"{'method':12}{'wall s':>9}{'peak MiB':>10}{'vs MinMax MiB':>15}")
    for method, (wall, peak) in results.items():
        print(f"{method:12}{wall:9.1f}{peak:10.0f}{peak - base:+15.0f}")


if __name__ == "__main__":
    from docs_tables import section

    with section("calibration_memory", preformatted=True):
        main()
