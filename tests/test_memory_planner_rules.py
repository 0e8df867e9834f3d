"""One test per buffer rule of `engine.footprint.memory_planner`, on tiny int8 models converted by
the real TFLite converter (int8 input and output, so no (de)quantize op hides the rule), each
compared with the arena size worked out by hand in the test."""

from pathlib import Path

import numpy as np
import pytest

from engine.footprint import estimate_footprint
from engine.footprint.graph import Window
from engine.footprint.memory_planner import overlap_shift, plan_activations
from engine.footprint.tflite import read_tflite


def _int8(tmp_path: Path, build, input_shape: tuple[int, ...], name: str) -> Path:
    import tensorflow as tf

    keras = tf.keras
    inputs = keras.Input(input_shape, batch_size=1)
    model = keras.Model(inputs, build(keras.layers, inputs))
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.random((1, *input_shape), np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(converter.convert())
    return path


def _arena(path: Path, kinds: list[str]) -> int:
    graph = read_tflite(path)
    assert [op.kind for op in graph.ops] == kinds  # the structure the hand computation assumes
    return plan_activations(graph, lambda t: t.nbytes).arena_bytes


def test_overlap_shift_by_hand():
    # 16 input rows of 128 B, 8 output rows of 32 B, kernel 3 stride 2 no top padding: row 0 must
    # sit entirely before the input (32 B); from row 1 on, the input rows already consumed make room
    assert overlap_shift(16, 2048, 8, 256, Window(3, 2, 0)) == 32
    # stride 1, one row of padding, same row size (a 3x3 "same" conv): row r needs input from r-1,
    # so the output must start one row plus the row being written ahead: 2 rows
    assert overlap_shift(8, 512, 8, 512, Window(3, 1, 1)) == 128
    # a 1x1 conv that doubles the row: the last row needs the whole output minus 7 input rows
    assert overlap_shift(8, 256, 8, 512, Window(1, 1, 0)) == 8 * 64 - 7 * 32


def test_stride_2_conv_writes_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(4, 3, strides=2, padding="same")(x), (16, 16, 8), "s2")
    # input 16x16x8 = 2048 B, output 8x8x4 = 256 B; the output may overlap the input as long as it
    # ends 32 B past it (bottom-up shift = 32 B, see test_overlap_shift_by_hand): 2048 + 32
    assert _arena(path, ["CONV_2D"]) == 2048 + 32


def test_pooling_writes_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.MaxPooling2D(2)(x), (8, 8, 8), "pool")
    # input 8 rows of 64 B, output 4 rows of 32 B, window 2 stride 2: shift = one output row
    assert _arena(path, ["MAX_POOL_2D"]) == 512 + 32


def test_widening_1x1_conv_gets_its_own_buffer(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(16, 1)(x), (8, 8, 4), "widen")
    assert _arena(path, ["CONV_2D"]) == 256 + 1024  # input + output side by side


def test_depthwise_conv_gets_its_own_buffer(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.DepthwiseConv2D(3, padding="same")(x), (8, 8, 8), "dw")
    assert _arena(path, ["DEPTHWISE_CONV_2D"]) == 512 + 512


def test_residual_add_is_computed_in_place(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Add()([x, L.Conv2D(4, 3, padding="same")(x)]), (8, 8, 4), "add")
    # the block input (256 B) and the conv output (256 B) are alive together; the sum overwrites one
    assert _arena(path, ["CONV_2D", "ADD"]) == 256 + 256


def test_concatenation_needs_both_inputs_and_its_output(tmp_path):
    def build(L, x):
        return L.Concatenate()([L.Conv2D(4, 1)(x), L.Conv2D(4, 1)(x)])

    path = _int8(tmp_path, build, (8, 8, 4), "concat")
    # at the concatenation: two 8x8x4 branches (256 B each) and the 8x8x8 output (512 B)
    assert _arena(path, ["CONV_2D", "CONV_2D", "CONCATENATION"]) == 256 + 256 + 512


def test_reshape_reuses_its_input(tmp_path):
    def build(L, x):
        return L.Conv2D(1, 1)(L.Reshape((4, 4, 16))(L.Dense(256)(x)))

    path = _int8(tmp_path, build, (16,), "reshape")
    # dense 16 -> 256 B, reshape free (same buffer), 1x1 conv 256 -> 16 B: the largest step is 272 B
    # (a copying reshape would hold 256 + 256 B)
    assert _arena(path, ["FULLY_CONNECTED", "RESHAPE", "CONV_2D"]) == 16 + 256


def test_float_footprint_uses_the_same_plan(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.MaxPooling2D(2)(x), (8, 8, 8), "pool_float")
    fp = estimate_footprint(path)
    assert fp.float_activation_ram_kib == pytest.approx(4 * fp.activation_ram_kib, abs=0.01)
    assert fp.float_activation_ram_kib == round((512 + 32) * 4 / 1024, 2)


def test_onnx_rows_run_along_the_nchw_height_axis(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from engine.footprint.onnx import read_onnx

    weights = numpy_helper.from_array(np.ones((4, 8, 3, 3), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])
    graph = helper.make_graph([conv], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weights])
    path = tmp_path / "s2.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    # float input 16 rows of 8x16x4 = 512 B, output 8 rows of 4x8x4 = 128 B, top padding 1:
    # shift = one output row, so the 1024 B output ends 128 B past the 8192 B input
    assert plan_activations(read_onnx(path), lambda t: t.nbytes).arena_bytes == 8192 + 128
