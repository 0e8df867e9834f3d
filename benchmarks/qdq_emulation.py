"""How ONNX Runtime's QDQ emulation (fusion off) differs from its integer kernels (fusion on).

With graph optimizations at BASIC, every QuantizeLinear/DequantizeLinear of a QDQ model runs as
written: each op computes in float on dequantized int8 values and its output is rounded to int8 by
the next QuantizeLinear (fake quantization). At ALL, ONNX Runtime fuses DQ -> op -> Q into integer
kernels (QLinearConv, QLinearAdd, ...: int32 accumulation, then requantization), as an MCU computes.
The tutorial model (`.h5`, converted with tf2onnx) and the NCHW `flowers_onnx` model are quantized by
the engine's ONNX quantizer (QDQ, MinMax, per-channel, calibrated on the 300 photos) and run both
ways on the photos. Run from the project root:

    python benchmarks/qdq_emulation.py [--assets ../shared/assets]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quantization_quality import SPEC, photos, settings
from engine.data.calibration import ImageCalibrationData
from engine.data.images import decode_all
from engine.quantize.onnx import quantize_onnx

MODELS = {
    "tutorial .h5 (tf2onnx, NCHW)": Path("models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5"),
    "flowers_onnx (NCHW)": Path("models/flowers_onnx/mobilenet_v2_0.35_128_tfs_channel_first.onnx"),
}


def with_logits(path: Path, work: Path) -> tuple[Path, float]:
    """A copy of the QDQ model that also outputs the dequantized logits (the Softmax input), and their scale."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    dequantize = next(node for node in model.graph.node if node.output[0] == softmax.input[0])
    scale = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == dequantize.input[1])
    model.graph.output.append(onnx.ValueInfoProto(name=softmax.input[0]))
    out = work / f"{path.stem}_logits.onnx"
    onnx.save(model, str(out))
    return out, float(scale)


def session(path: Path, fused: bool, work: Path):
    """An ORT CPU session of `path`, QDQ fusion on (ALL) or off (BASIC); also the op counts it runs."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    )
    optimized = work / f"{path.stem}_{'fused' if fused else 'basic'}.onnx"
    options.optimized_model_filepath = str(optimized)
    result = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = Counter(node.op_type for node in onnx.load(str(optimized)).graph.node)
    return result, ops


def outputs(sess, images: np.ndarray, index: int = 0) -> np.ndarray:
    name = sess.get_inputs()[0].name
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return np.concatenate([sess.run(None, {name: nchw[i : i + 1]})[index].reshape(1, -1) for i in range(len(nchw))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    files, _ = photos(args.assets / "datasets/flower_photos")
    images, _ = decode_all(files, SPEC)
    for label, model in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            calibration = ImageCalibrationData(files, SPEC, "photos")
            result = quantize_onnx(
                args.assets / model, calibration, settings("Onnx_quantizer", "per_channel", False), work, work
            )
            float_out = outputs(session(Path(result.float_model), False, work)[0], images)
            probe, logit_scale = with_logits(result.model_path, work)
            basic_sess, basic_ops = session(probe, False, work)
            fused_sess, fused_ops = session(probe, True, work)
            basic, fused = outputs(basic_sess, images), outputs(fused_sess, images)
            basic_logits, fused_logits = outputs(basic_sess, images, 1), outputs(fused_sess, images, 1)
        integer_ops = {
            op: n for op, n in fused_ops.items() if op.startswith(("QLinear", "QGemm")) or op == "ConvInteger"
        }
        print(
            f"{label}: {len(images)} photos; fused graph runs {integer_ops} "
            f"({fused_ops['DequantizeLinear']} DequantizeLinear left; unfused: {basic_ops['QuantizeLinear']} "
            f"QuantizeLinear, {basic_ops['DequantizeLinear']} DequantizeLinear)"
        )
        print(
            f"  top-1 agreement fused vs unfused: {100 * np.mean(basic.argmax(1) == fused.argmax(1)):.2f} %, "
            f"max |output difference| {np.abs(basic - fused).max():.4g} "
            f"(outputs differ on {100 * np.mean(np.any(basic != fused, axis=1)):.1f} % of photos)"
        )
        logit_steps = np.abs(basic_logits - fused_logits) / logit_scale
        print(
            f"  logits (Softmax input, step {logit_scale:.4g}): max |difference| {logit_steps.max():.0f} steps, "
            f"differ on {100 * np.mean(np.any(logit_steps > 0.5, axis=1)):.1f} % of photos; "
            f"top-1 of the logits agrees on {100 * np.mean(basic_logits.argmax(1) == fused_logits.argmax(1)):.2f} %"
        )
        for name, values in (("unfused (emulation)", basic), ("fused (int8 kernels)", fused)):
            print(
                f"  {name}: agreement with float {100 * np.mean(values.argmax(1) == float_out.argmax(1)):.2f} %, "
                f"max |difference from float| {np.abs(values - float_out).max():.4g}"
            )


if __name__ == "__main__":
    from docs_tables import section

    with section("qdq_emulation"):
        main()
