"""One test per buffer rule of `engine.footprint.memory_planner` (STM32Cube.AI 8.1's rules), on tiny int8
models converted by the real TFLite converter (int8 input and output, so no (de)quantize op hides the rule;
the graph input and output are inside the arena), each compared with the arena size worked out by hand in
the test, and the upper bound (no overlap) beside it."""

from pathlib import Path

import numpy as np
import pytest

from engine.footprint import estimate_footprint
from engine.footprint.graph import Window, conv_scratch_bytes, depthwise_scratch_bytes
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


def _arena(path: Path, kinds: list[str], scratch: bool = False, overlap: bool = True) -> int:
    """Arena of the int8 plan; without kernel scratch unless asked, so each test sees one rule."""
    graph = read_tflite(path)
    assert [op.kind for op in graph.ops] == kinds  # the structure the hand computation assumes
    return plan_activations(graph, lambda t: t.nbytes, scratch=scratch, overlap=overlap).arena_bytes


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
    path = _int8(tmp_path, lambda L, x: L.Conv2D(4, 3, strides=2)(x), (17, 17, 8), "s2")
    # no padding: input 17x17x8 = 2312 B (rows of 136 B), output 8x8x4 = 256 B (rows of 32 B); the output
    # may overlap the input as long as it ends one output row (32 B) past it: 2312 + 32
    assert _arena(path, ["CONV_2D"]) == 2312 + 32
    assert _arena(path, ["CONV_2D"], overlap=False) == 2312 + 256  # upper bound: side by side


def test_padded_conv_reads_a_copy_padded_as_stm32cubeai_does(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(4, 3, strides=2, padding="same")(x), (16, 16, 8), "s2same")
    # 8.1 pads "same" at stride 2 with two rows and columns at the end (TensorFlow: one): the 16x16x8 input
    # (2048 B) is copied into 18x18x8 (2592 B, rows of 144 B) written over it, ending with it; the 8x8x4
    # output (rows of 32 B) starts one output row before the copy: 2592 + 32
    assert _arena(path, ["CONV_2D"]) == 2592 + 32
    # upper bound: input and copy side by side (2048 + 2592), then copy and output (the input is dead)
    assert _arena(path, ["CONV_2D"], overlap=False) == 2048 + 2592


def test_widening_conv_writes_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(16, 3, strides=2)(x), (17, 17, 2), "widen3")
    # no padding: input 17 rows of 34 B (578 B), output 8 rows of 128 B (1024 B): output row r may end
    # where input row 2r starts, so the output starts max_r (r+1)*128 - 2r*34 = 128 + 7*60 = 548 B before
    # the input: 548 + 578
    assert _arena(path, ["CONV_2D"]) == 548 + 578
    assert _arena(path, ["CONV_2D"], overlap=False) == 578 + 1024


def test_self_padding_rgb_conv_is_tied_below_its_input(tmp_path):
    widening = _int8(tmp_path, lambda L, x: L.Conv2D(16, 3, strides=2, padding="same")(x), (16, 16, 3), "rgb16")
    # a 3-channel input: 8.1's conv2d_rgb kernel pads it itself (no copy). Input 16x16x3 = 768 B, output
    # 8x8x16 = 1024 B (rows of 128 B, pixels of 16 B): the output must end one output row and one pixel
    # (144 B) before the input ends, so it starts 1024 - 768 + 144 = 400 B before the input: 400 + 768
    # (the rows alone would allow 128 + 7 * (128 - 96) = 352 B)
    assert _arena(widening, ["CONV_2D"]) == 400 + 768
    shrinking = _int8(tmp_path, lambda L, x: L.Conv2D(4, 3, strides=2, padding="same")(x), (16, 16, 3), "rgb4")
    # output 8x8x4 = 256 B (rows of 32 B, pixels of 4 B): it must start one row and one pixel (36 B)
    # before the input, never end past it (the planner puts other outputs there): 36 + 768
    assert _arena(shrinking, ["CONV_2D"]) == 36 + 768


def test_shrinking_pointwise_conv_writes_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(4, 1)(x), (8, 8, 16), "shrink1x1")
    # input 8 rows of 128 B, output 8 rows of 32 B: one output row ahead of the input
    assert _arena(path, ["CONV_2D"]) == 1024 + 32
    # with scratch: 4 x 16 + 10 x 4 bytes (stride-1 pointwise kernel)
    assert _arena(path, ["CONV_2D"], scratch=True) == 1024 + 32 + 4 * 16 + 10 * 4


def test_doubling_pointwise_conv_writes_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(8, 1)(x), (8, 8, 4), "double1x1")
    # input 8 rows of 32 B, output 8 rows of 64 B: the output starts 8*64 - 7*32 = 288 B before the
    # input, the pair takes 288 + 256 = 544 B (MobileNet v1's 8 -> 16 and 16 -> 32 in 8.1's figures)
    assert _arena(path, ["CONV_2D"]) == 288 + 256


def test_pooling_writes_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.MaxPooling2D(2)(x), (8, 8, 8), "pool")
    # input 8 rows of 64 B, output 4 rows of 32 B, window 2 stride 2: shift = one output row
    assert _arena(path, ["MAX_POOL_2D"]) == 512 + 32


def test_pooling_runs_fused_with_the_conv_before_it(tmp_path):
    def build(L, x):
        return L.MaxPooling2D(2)(L.Conv2D(8, 3, padding="same")(x))

    path = _int8(tmp_path, build, (16, 16, 4), "conv_pool")
    # the conv's padded copy 18x18x4 = 1296 B (written over the 1024 B input) kept until the pooling, the
    # conv output only as 2 rows of 16x8 (256 B instead of 2048 B), the 8x8x8 pooled output 512 B
    # (8.x code: conv2d_2_pad_before, then conv2d_nl_pool with a 2-row scratch1); unfused: 1296 + 2048
    assert _arena(path, ["CONV_2D", "MAX_POOL_2D"]) == 1296 + 256 + 512


def test_widening_1x1_conv_gets_its_own_buffer(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(16, 1)(x), (8, 8, 4), "widen")
    # 4x wider (more than WIDENING_OVERLAP_MAX): input + output side by side, as 8.1's code does for its
    # 8 -> 48 expansion, plus the stride-1 pointwise scratch 4 x 4 + 10 x 16 bytes
    assert _arena(path, ["CONV_2D"], scratch=True) == 256 + 1024 + 4 * 4 + 10 * 16


# (in_channels, taps, out_channels, stride-1 pointwise) -> conv2d_*_scratch0 bytes in network.c
# generated by STM32Cube.AI / ST Edge AI Core: MLPerf Tiny ResNet-8 (conv2d_1 .. conv2d_10), a 1-D
# conv net (kernels 5x1 and 3x1) and DS-CNN keyword spotting (first layer)
GENERATED_SCRATCH = {
    (3, 9, 16, False): 1196,
    (16, 9, 16, False): 5408,
    (16, 9, 32, False): 6144,
    (16, 1, 32, False): 1536,
    (32, 9, 32, False): 6720,
    (32, 9, 64, False): 7168,
    (64, 9, 64, False): 8320,
    (3, 5, 32, False): 1468,
    (32, 5, 64, False): 6656,
    (64, 3, 96, False): 7232,
    (1, 9, 32, False): 1060,
    # stride-1 pointwise, STM32Cube.AI 8.1's MobileNet v2 0.35 96 (conv2d_3, _4, _7, _15, _27, _30)
    (16, 1, 8, True): 144,
    (8, 1, 48, True): 512,
    (48, 1, 8, True): 272,
    (48, 1, 16, True): 352,
    (96, 1, 24, True): 624,
    (144, 1, 24, True): 816,
}
# channels -> depthwise conv2d_*_scratch0 bytes in the same 8.1 code (3x3, stride 1 and 2)
GENERATED_DEPTHWISE_SCRATCH = {16: 593, 48: 1777, 96: 3553, 144: 5329, 192: 7105, 336: 12433}


def test_conv_scratch_matches_generated_code():
    for (cin, taps, cout, pointwise), expected in GENERATED_SCRATCH.items():
        assert conv_scratch_bytes(cin, taps, cout, pointwise) == expected, (cin, taps, cout)
    for channels, expected in GENERATED_DEPTHWISE_SCRATCH.items():
        assert depthwise_scratch_bytes(channels) == expected, channels


def test_conv_scratch_sits_in_the_arena_during_the_conv(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(4, 3, strides=2, padding="same")(x), (16, 16, 8), "scratch")
    # padded copy 2592 B with the 256 B output one row (32 B) before it (test_padded_conv_...), plus
    # the conv's scratch: 4*8*9 (im2col) + 14*4 (per output channel) + 2*288 (weights) = 920 B
    assert _arena(path, ["CONV_2D"], scratch=True) == 2592 + 32 + 920


def test_depthwise_conv_reads_a_padded_copy_written_over_its_input(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.DepthwiseConv2D(3, padding="same")(x), (8, 8, 8), "dw")
    # the 8x8x8 input (512 B) is copied with its zeros into 10x10x8 (800 B) over itself; the output rows
    # (64 B) are written over the copy's rows (80 B) one output row ahead: 800 + 64
    assert _arena(path, ["DEPTHWISE_CONV_2D"]) == 800 + 64
    # with the depthwise kernel's scratch, 37 x 8 + 1 bytes
    assert _arena(path, ["DEPTHWISE_CONV_2D"], scratch=True) == 800 + 64 + 37 * 8 + 1
    # upper bound: input and copy side by side, then copy and output (the input is dead by then)
    assert _arena(path, ["DEPTHWISE_CONV_2D"], overlap=False) == 800 + 512


def test_explicit_pad_before_a_strided_depthwise_conv_is_its_copy(tmp_path):
    def build(L, x):
        return L.DepthwiseConv2D(3, strides=2)(L.ZeroPadding2D(1)(x))

    path = _int8(tmp_path, build, (8, 8, 8), "pad_dw")
    # the PAD's 10x10x8 output (800 B) is the copy, over the 512 B input; the 4x4x8 output (rows of 32 B)
    # one row ahead of it: 800 + 32
    assert _arena(path, ["PAD", "DEPTHWISE_CONV_2D"]) == 800 + 32
    same = _int8(tmp_path, lambda L, x: L.DepthwiseConv2D(3, strides=2, padding="same")(x), (8, 8, 8), "dw_s2")
    # "same" at stride 2: TensorFlow pads one row and column at the end, 8.1 two (its SAME padding is
    # kernel - 1 - top at the bottom): a 10x10x8 copy (800 B), the same as the explicit PAD above
    assert _arena(same, ["DEPTHWISE_CONV_2D"]) == 800 + 32


def test_explicit_pad_before_a_standard_conv_is_its_copy(tmp_path):
    def build(L, x):
        return L.Conv2D(4, 3)(L.ZeroPadding2D(((0, 2), (0, 2)))(x))

    path = _int8(tmp_path, build, (8, 8, 8), "pad_conv")
    # 8.1 keeps a PAD before a convolution as a layer (its MobileFaceNet code: pad_0): its 10x10x8 output
    # (800 B) is written over the 512 B input, the 8x8x4 output (rows of 32 B) one row before it: 800 + 32
    assert _arena(path, ["PAD", "CONV_2D"]) == 800 + 32


def test_a_layer_input_stays_below_a_bigger_later_buffer(tmp_path):
    def build(L, x):
        return L.DepthwiseConv2D(3, padding="same")(L.Conv2D(12, 1)(x))

    path = _int8(tmp_path, build, (16, 16, 4), "expand_dw")
    # the 3x wider 1x1 conv keeps its own buffer: input 16x16x4 (1024 B) + output 16x16x12 (3072 B) side by
    # side; the depthwise conv's copy 18x18x12 (3888 B) ends with that output and its output (rows of 192 B)
    # starts one row before the copy, all within 4096 B. Largest first, the copy would take the bottom and
    # push the input above it (4912 B); re-placing the buffers alive at the peak keeps the input below
    assert _arena(path, ["CONV_2D", "DEPTHWISE_CONV_2D"]) == 1024 + 3072


def test_residual_add_is_computed_in_place(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Add()([x, L.Conv2D(4, 1)(x)]), (8, 8, 4), "add")
    # the block input (256 B) and the conv output (256 B) are alive together; the sum overwrites one
    assert _arena(path, ["CONV_2D", "ADD"]) == 256 + 256
    assert _arena(path, ["CONV_2D", "ADD"], overlap=False) == 3 * 256  # upper bound: the sum has its own


def test_stride_1_conv_over_an_input_read_later_keeps_both(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Add()([x, L.Conv2D(4, 3, padding="same")(x)]), (8, 8, 4), "keep")
    # the conv's input (256 B) does not die at the conv (the ADD reads it): its padded copy 10x10x4 = 400 B
    # is not written over it; the output (rows of 32 B) is written over the copy, one row ahead; plus the
    # conv's scratch 4*4*9 + 14*4 + 2*144 = 488 B
    assert _arena(path, ["CONV_2D", "ADD"], scratch=True) == 256 + 400 + 32 + 488


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
    graph = helper.make_graph(
        [conv],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weights],
    )
    path = tmp_path / "s2.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    # float input 16 rows of 8x16x4 = 512 B, read through its padded copy 8x18x18 floats = 10368 B (rows of
    # 576 B) written over it; output 8 rows of 4x8x4 = 128 B, one output row before the copy
    assert plan_activations(read_onnx(path), lambda t: t.nbytes, scratch=False).arena_bytes == 10368 + 128
    assert read_onnx(path).ops[0].scratch_bytes == 0  # a float conv: the int8 kernels' scratch does not apply


def test_the_peak_layer_and_what_a_smaller_input_saves(tmp_path):
    path = _int8(tmp_path, lambda L, x: L.Conv2D(8, 3, strides=2, padding="same")(x), (32, 32, 3), "peak")
    fp = estimate_footprint(path)
    # input 32x32x3 (3072 B), output 16x16x8 (rows of 128 B, pixels of 8 B), a self-padding 3-channel conv:
    # the output starts one row and one pixel (136 B) before the input, + scratch 4*3*9 + 14*8 + 2*216 = 652 B
    assert fp.activation_ram_kib == round((3072 + 136 + 652) / 1024, 2)
    assert fp.activation_ram_upper_kib == round((3072 + 2048 + 652) / 1024, 2)
    # total stride 2, so the next smaller input is 30: output rows of 120 B, 2700 + 128 + 652 B, 380 B less
    assert fp.peak is not None and fp.peak.layer == 0
    assert fp.peak.text() == "input 32x32x3 + output 16x16x8 + scratch 0.64 KiB: a 32 -> 30 input saves 0.37 KiB"
    assert "  0  CONV_2D" in fp.format_table() and "3.77* " in fp.format_table()


def test_the_smaller_input_saving_is_the_plan_of_the_model_rebuilt_at_that_size(tmp_path):
    def build(layers, x):
        x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
        x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
        return layers.Conv2D(16, 1)(x)

    at32, at28 = _int8(tmp_path, build, (32, 32, 4), "at32"), _int8(tmp_path, build, (28, 28, 4), "at28")
    fp = estimate_footprint(at32)
    # total stride 4: the next smaller input is 28, and the saving is what the same network converted at
    # 28x28 needs less, planned from its own file
    assert fp.peak is not None and (fp.peak.input_size, fp.peak.smaller_input) == (32, 28)
    arenas = [plan_activations(read_tflite(path), lambda t: t.nbytes).arena_bytes for path in (at32, at28)]
    assert fp.peak.saving_kib == round((arenas[0] - arenas[1]) / 1024, 2) > 0
