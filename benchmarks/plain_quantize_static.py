"""The baseline of `onnx_vs_quantize_static.py`: a plain ONNX Runtime `quantize_static` script, as a user would
write it from ONNX Runtime's documentation (decode the photos with Pillow, one data reader, QDQ per-channel
MinMax, int8 weights and activations). No layer report, no footprint, no cache.

    python benchmarks/plain_quantize_static.py MODEL.onnx PHOTOS_DIR SIZE OUT.onnx
"""

import sys
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from PIL import Image


class PhotoReader(CalibrationDataReader):
    """Every photo under the class folders, one at a time: RGB, nearest resize, x/127.5 - 1, NCHW."""

    def __init__(self, photos: Path, size: int, input_name: str) -> None:
        self.files = iter(sorted(p for folder in sorted(photos.iterdir()) if folder.is_dir() for p in folder.iterdir()))
        self.size, self.input_name = size, input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self.files, None)
        if path is None:
            return None
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((self.size, self.size), Image.NEAREST), np.float32)
        return {self.input_name: (pixels / 127.5 - 1.0).transpose(2, 0, 1)[None]}


def main() -> None:
    model, photos, size, out = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    import onnx

    input_name = onnx.load(model, load_external_data=False).graph.input[0].name
    quantize_static(
        model,
        out,
        PhotoReader(photos, size, input_name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


if __name__ == "__main__":
    main()
