"""Metrics, confusion table/PNG and the VNNI warning, on a hand-made case run through a real ONNX model."""

import platform
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from engine.common.errors import EngineError
from engine.evaluation.accuracy import (
    agreement,
    confusion_table,
    evaluate,
    save_confusion_png,
)
from engine.evaluation.predictors import load_predictor, onnx_int8_saturation_warning

CLASSES = ["apple", "banana", "cherry", "date"]
LABELS = [0, 0, 0, 1, 1, 2]
PREDICTED = [0, 0, 1, 1, 2, 2]  # "date" never occurs: its row is all zeros


def _mean_pixel_classifier(path: Path, classes: int) -> Path:
    """An NHWC ONNX model whose scores are its mean pixel: the class is the brightest channel."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["scores"], axes=[1, 2], keepdims=0)],
        "mean_pixel",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 6, 6, classes])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", classes])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _images(predicted: list[int], classes: int) -> np.ndarray:
    pixels = np.eye(classes, dtype=np.float32)[predicted].reshape(len(predicted), 1, 1, classes)
    return np.broadcast_to(pixels, (len(predicted), 6, 6, classes)).copy()


@pytest.fixture
def result(tmp_path):
    predictor = load_predictor(_mean_pixel_classifier(tmp_path / "mean.onnx", len(CLASSES)))
    progress = []
    outcome = evaluate(
        predictor, _images(PREDICTED, 4), LABELS, CLASSES, batch_size=4, on_progress=lambda *p: progress.append(p)
    )
    assert progress == [(4, 6), (6, 6)]
    return outcome


def test_metrics_and_confusion_are_exact(result):
    assert result.n == 6
    assert result.accuracy == pytest.approx(400 / 6)
    assert result.per_class == [pytest.approx(200 / 3), 50.0, 100.0, None]
    assert result.confusion == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(result.predictions, PREDICTED)
    assert result.runtime.startswith("ONNX Runtime ")
    summary = result.to_dict()
    assert summary["accuracy"] == 66.67
    assert summary["per_class"] == {"apple": 66.67, "banana": 50.0, "cherry": 100.0, "date": None}
    assert summary["class_names"] == CLASSES and "predictions" not in summary


def test_agreement(result, tmp_path):
    predictor = load_predictor(_mean_pixel_classifier(tmp_path / "other.onnx", len(CLASSES)))
    other = evaluate(predictor, _images([0, 0, 0, 1, 2, 3], 4), LABELS, CLASSES)
    assert agreement(result, other) == pytest.approx(400 / 6)
    assert agreement(result, result) == 100.0


def test_class_count_mismatch_is_reported(tmp_path):
    predictor = load_predictor(_mean_pixel_classifier(tmp_path / "three.onnx", 3))
    with pytest.raises(EngineError, match="outputs 3 classes but the dataset has 4 class names"):
        evaluate(predictor, _images([0, 1], 3), [0, 1], CLASSES)
    with pytest.raises(EngineError, match=r"labels must lie in 0..2"):
        evaluate(predictor, _images([0, 1], 3), [0, 3], CLASSES[:3])


def test_confusion_table_text(result):
    lines = confusion_table(result).splitlines()
    assert lines[0].split() == ["true", "\\", "pred", *CLASSES, "acc", "%"]
    assert lines[1].split() == ["apple", "2", "1", "0", "0", "66.7"]
    assert lines[4].split() == ["date", "0", "0", "0", "0", "-"]
    assert lines[-1].startswith("top-1 accuracy 66.67 % on 6 images")


def test_confusion_png_is_written_and_loadable(result, tmp_path):
    target = tmp_path / "out" / "quantized_model_confusion_matrix_test_set.png"
    save_confusion_png(result, target, "quantized model (a rather long title to widen the figure)")
    with Image.open(target) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.width > 200 and image.height > 200
        assert len(image.getcolors(maxcolors=100_000)) > 10  # cells, text and shading were drawn
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left


@pytest.mark.skipif(platform.machine().lower() not in {"x86_64", "amd64"}, reason="the VNNI check is x86-only")
def test_vnni_warning_follows_cpu_flags(tmp_path):
    without = tmp_path / "cpuinfo_avx2"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    with_vnni = tmp_path / "cpuinfo_vnni"
    with_vnni.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n")
    warning = onnx_int8_saturation_warning(without)
    assert warning and "VNNI" in warning and "\n" not in warning
    assert onnx_int8_saturation_warning(with_vnni) is None
    assert onnx_int8_saturation_warning(tmp_path / "absent") is None


def test_uint8_pixels_need_their_spec():
    with pytest.raises(EngineError, match="ImageSpec"):
        evaluate(None, np.zeros((2, 4, 4, 3), np.uint8), [0, 1], ["a", "b"])
