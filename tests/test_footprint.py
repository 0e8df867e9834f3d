"""Footprint estimator: exact counts on small real models, the planner on hand-built graphs, the
board fit, and the published STM32Cube.AI figures (activation RAM of 8.1 and 10.0, STM32H747I-DISCO and
STM32F769I-DISCO times) of the shared model-zoo files."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.common.errors import InputError
from engine.footprint import estimate_footprint
from engine.footprint.boards import BOARDS, board_fit
from engine.footprint.graph import Graph, Op, Role, Tensor
from engine.footprint.memory_planner import plan_activations
from engine.footprint.timing import CYCLES
from tests.conftest import ASSETS
from tests.cubeai_published import allocator_figure, published_figures, published_releases
from tests.test_cli_errors import run_cli

KEYS = [
    "weights_flash_kib",
    "activation_ram_kib",
    "activation_ram_upper_kib",
    "allocator",
    "macc",
    "params",
    "float_weights_kib",
    "float_activation_ram_kib",
    "cycles_m7",
    "estimated_inference_ms",
    "layers",
    "peak",
]


@pytest.fixture(scope="module")
def tiny_int8_tflite(tmp_path_factory) -> Path:
    """8x8x3 -> conv3x3(4)+relu -> depthwise3x3 -> global average -> dense(2), full int8."""
    import tensorflow as tf

    keras = tf.keras
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, bias_initializer="ones")(x)  # a zero bias would be dropped
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.random((1, 8, 8, 3), np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tiny") / "tiny_int8.tflite"
    path.write_bytes(converter.convert())
    return path


def test_int8_tflite_counts_match_hand_computed(tiny_int8_tflite):
    fp = estimate_footprint(tiny_int8_tflite)
    assert fp.params == (27 * 4 + 4) + (9 * 4 + 4) + (4 * 2 + 2)
    # int8 kernels + int32 biases: 108+16, 36+16, 8+8 bytes
    assert fp.weights_flash_kib == round(192 / 1024, 2)
    assert fp.float_weights_kib == round(162 * 4 / 1024, 2)
    # conv 8*8*4*27 + depthwise 8*8*4*9 + mean over 8*8*4 + dense 4*2
    assert fp.macc == 6912 + 2304 + 256 + 8
    # peak: the 3x3 conv (3-channel input, pads itself) writes its 8x8x4 output (rows of 32 B) over its
    # 8x8x3 input (rows of 24 B, one row of top padding): output row r may end where input row r-1 starts,
    # so it starts max_r (r+1)*32 - (r-1)*24 = 256 - 144 = 112 B before the input (more than one row and one
    # pixel, 36 B). The depthwise conv's 10x10x4 padded copy (400 B) ends with the conv's output, so that
    # output starts 144 B up: 144 + 112 + 192, + the conv's scratch 4*3*9 + 14*4 + 2*108 = 380 B above.
    # The depthwise step: the copy, its 8x8x4 output ending one row (32 B) past it, its scratch 37*4 + 1 B.
    # Float: the conv step, 4 * (144 + 112 + 192), no scratch. Upper bound: never less than the conv's
    # input + output + scratch side by side
    assert fp.activation_ram_kib == round((144 + 112 + 192 + 380) / 1024, 2)
    assert fp.float_activation_ram_kib == round(4 * (144 + 112 + 192) / 1024, 2)
    assert fp.activation_ram_upper_kib >= round((192 + 256 + 380) / 1024, 2)
    assert fp.allocator == "STM32Cube.AI 8.1"
    assert [layer.op for layer in fp.layers] == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert [layer.live_activation_bytes for layer in fp.layers[:2]] == [144 + 112 + 192 + 380, 400 + 32 + 149]


def test_float_onnx_conv_counts(tmp_path):
    weights = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], name="conv")
    graph = helper.make_graph(
        [conv],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weights, bias],
    )
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    fp = estimate_footprint(path)
    assert (fp.macc, fp.params) == (4 * 8 * 8 * 27, 112)
    assert fp.weights_flash_kib == fp.float_weights_kib == round(448 / 1024, 2)
    # the float 4x8x8 output written over the 3x8x8 input (its only reader), rows of 128 B over rows of
    # 96 B with one row of top padding: it starts max_r (r+1)*128 - (r-1)*96 = 448 B before the input
    assert fp.activation_ram_kib == round((448 + 3 * 64 * 4) / 1024, 2)
    assert fp.activation_ram_upper_kib == round((3 * 64 + 4 * 64) * 4 / 1024, 2)
    assert fp.layers[0].output_shape == (1, 4, 8, 8)


def _graph(ops, sizes, inputs, outputs) -> Graph:
    tensors = {name: Tensor(name, (size,), 1) for name, size in sizes.items()}
    return Graph(ops, tensors, inputs, outputs)


def test_planner_greedy_first_fit_like_tflm():
    # a(3) -> b(2) -> c(2) -> d(4) -> e(1): largest first leaves a hole, as TFLM's greedy planner does
    ops = [Op("K", str(i), [s], [t]) for i, (s, t) in enumerate(zip("abcd", "bcde"))]
    plan = plan_activations(_graph(ops, {"a": 3, "b": 2, "c": 2, "d": 4, "e": 1}, ["a"], ["e"]), lambda t: t.nbytes, 1)
    offsets = {b.tensors[0]: b.offset for b in plan.buffers}
    assert offsets == {"d": 0, "a": 0, "b": 3, "c": 5, "e": 4}
    assert plan.arena_bytes == 7
    assert plan.live_bytes == [5, 7, 7, 5]  # highest end among the buffers alive at each step


def test_planner_folds_padding_and_works_in_place():
    ops = [
        Op("PAD", "pad", ["x"], ["p"], role=Role.PAD),
        Op("POOL", "pool", ["p"], ["y"], absorbs_padding=True),  # a pooling applies a PAD's zeros itself
        Op("ADD", "add", ["y", "x"], ["z"], role=Role.ELEMENTWISE),
        Op("RESHAPE", "flat", ["z"], ["r"], role=Role.VIEW),
    ]
    plan = plan_activations(
        _graph(ops, {"x": 10, "p": 12, "y": 10, "z": 10, "r": 10}, ["x"], ["r"]), lambda t: t.nbytes, 1
    )
    assert plan.arena_bytes == 20  # x + y; the padded copy never exists, z and r reuse y
    assert sorted(sorted(b.tensors) for b in plan.buffers) == [["r", "y", "z"], ["x"]]


def test_pad_feeding_a_non_convolution_is_kept():
    ops = [Op("PAD", "pad", ["x"], ["p"], role=Role.PAD), Op("ADD", "add", ["p"], ["y"])]
    plan = plan_activations(_graph(ops, {"x": 10, "p": 12, "y": 12}, ["x"], ["y"]), lambda t: t.nbytes, 1)
    assert plan.arena_bytes == 24


def test_to_dict_and_table(tiny_int8_tflite):
    fp = estimate_footprint(tiny_int8_tflite)
    data = fp.to_dict()
    assert list(data) == KEYS
    assert data["layers"][0]["output_shape"] == [1, 8, 8, 4]
    table = fp.format_table()
    assert "Weights flash" in table and "DEPTHWISE_CONV_2D" in table


@pytest.mark.parametrize("name", ["missing.tflite", "missing.onnx"])
def test_missing_model_is_input_error(tmp_path, name):
    with pytest.raises(InputError, match="missing"):
        estimate_footprint(tmp_path / name)


def test_unreadable_models_are_input_errors(tmp_path):
    for name in ("junk.tflite", "junk.onnx", "model.h5"):
        (tmp_path / name).write_bytes(b"\x00not a model at all")
        with pytest.raises(InputError, match=name):
            estimate_footprint(tmp_path / name)


def test_board_fit(tiny_int8_tflite):
    fp = estimate_footprint(tiny_int8_tflite)
    assert board_fit("NO-SUCH-BOARD", fp) is None
    fit = board_fit("nucleo-f401re", fp)
    cycles = fp.cycles_m7
    assert fit == {
        "board": "NUCLEO-F401RE",
        "mcu": "STM32F401RET6",
        "core": "Cortex-M4",
        "mhz": 84,
        "flash_kib": 512,
        "ram_kib": 96,
        "weights_fit": True,
        "activations_fit": True,
        "verdict": "fits",
        "flash_headroom_kib": round(512 - 0.19, 2),
        "flash_headroom_pct": round(100 * (512 - 0.19) / 512, 1),
        "ram_headroom_kib": round(96 - 0.81, 2),
        "ram_headroom_pct": round(100 * (96 - 0.81) / 96, 1),
        "ram_upper_headroom_kib": round(96 - fp.activation_ram_upper_kib, 2),
        "ram_upper_headroom_pct": round(100 * (96 - fp.activation_ram_upper_kib) / 96, 1),
        "estimated_inference_ms": round(cycles * 1.87 / 84_000, 2),
    }
    assert len(BOARDS) == 12
    assert board_fit("STM32N6570-DK", fp)["estimated_inference_ms"] is None  # NPU: not modelled


def test_board_verdict_tells_the_allocator_figure_from_the_upper_bound(tiny_int8_tflite):
    fp = estimate_footprint(tiny_int8_tflite)
    tight = board_fit("NUCLEO-F401RE", replace(fp, activation_ram_kib=90.0, activation_ram_upper_kib=100.0))
    assert tight is not None and tight["verdict"] == "fits only with in-place overlap (tight)"
    assert (tight["activations_fit"], tight["ram_headroom_kib"], tight["ram_upper_headroom_kib"]) == (True, 6.0, -4.0)
    assert tight["ram_upper_headroom_pct"] == round(-400 / 96, 1)
    over = board_fit("NUCLEO-F401RE", replace(fp, activation_ram_kib=97.0, activation_ram_upper_kib=120.0))
    assert over is not None and over["verdict"] == "does not fit" and not over["activations_fit"]
    heavy = board_fit("NUCLEO-F401RE", replace(fp, weights_flash_kib=600.0))
    assert heavy is not None and heavy["verdict"] == "does not fit"  # weights too big, whatever the RAM


def test_cycles_follow_the_op_kinds(tiny_int8_tflite):
    fp = estimate_footprint(tiny_int8_tflite, board="STM32H747I-DISCO")
    conv, depthwise, mean, dense = fp.layers
    assert conv.cycles == round(CYCLES["conv"] * 6912)
    assert depthwise.cycles == round(CYCLES["depthwise"] * 2304)
    assert mean.cycles == round(CYCLES["reduce"] * 256)  # per input element
    assert dense.cycles == round(CYCLES["dense"] * 8)
    assert fp.cycles_m7 == sum(layer.cycles for layer in fp.layers)
    assert sum(layer.time_share_pct for layer in fp.layers) == pytest.approx(100, abs=0.05)
    assert fp.estimated_inference_ms == round(fp.cycles_m7 / 400_000, 2)
    assert estimate_footprint(tiny_int8_tflite).estimated_inference_ms is None


def test_cli_footprint_json_with_board(tiny_int8_tflite, capsys):
    code, out, _ = run_cli(capsys, "footprint", str(tiny_int8_tflite), "--board", "STM32F769I-DISCO", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["estimated_inference_ms"] == data["board_fit"]["estimated_inference_ms"] > 0
    assert data["board_fit"]["ram_headroom_kib"] == round(528 - data["activation_ram_kib"], 2)
    assert data["board_fit"]["ram_upper_headroom_kib"] == round(528 - data["activation_ram_upper_kib"], 2)
    assert (data["allocator"], data["board_fit"]["verdict"]) == ("STM32Cube.AI 8.1", "fits")
    assert {"cycles", "time_share_pct"} <= set(data["layers"][0])
    code, table, _ = run_cli(capsys, "footprint", str(tiny_int8_tflite), "--board", "NUCLEO-F401RE")
    assert code == 0
    assert f"  upper bound   {data['activation_ram_upper_kib']:10.2f} KiB" in table
    assert "* sets the activation RAM peak: input 8x8x3 + output 8x8x4 + scratch 0.37 KiB" in table
    assert "NUCLEO-F401RE: fits; weights fit" in table


# Published STM32Cube.AI figures of the shared files, per release (8.1 and 10.0; ResNet v1 8: 7.3 only);
# the times are the newest release's.
RELEASES = published_releases(ASSETS / "models")
PUBLISHED = published_figures(ASSETS / "models")
NO_ASSETS = pytest.param(None, marks=pytest.mark.skip(reason=f"real model-zoo assets not found at {ASSETS}"))


@pytest.fixture(scope="module")
def reference_footprints() -> dict:
    models = ASSETS / "models"
    if not models.exists():
        pytest.skip(f"real model-zoo assets not found at {models} (see ../shared/assets/README.md)")
    return {rel: estimate_footprint(models / rel, board="STM32H747I-DISCO") for rel in RELEASES}


@pytest.mark.slow
@pytest.mark.parametrize("rel", list(RELEASES) or [NO_ASSETS])
def test_every_release_lies_between_the_primary_figure_and_the_upper_bound(reference_footprints, rel):
    fp = reference_footprints[rel]
    for published in RELEASES[rel].values():
        assert 0.95 * fp.activation_ram_kib <= published.activation_ram_kib, published
        assert published.activation_ram_kib <= 1.05 * fp.activation_ram_upper_kib, published
    assert fp.estimated_inference_ms == pytest.approx(PUBLISHED[rel].h747_ms, rel=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("rel", list(RELEASES) or [NO_ASSETS])
def test_primary_figure_within_2_pct_of_stm32cubeai_8_1(reference_footprints, rel):
    published = allocator_figure(RELEASES[rel])
    assert reference_footprints[rel].activation_ram_kib == pytest.approx(published.activation_ram_kib, rel=0.02)


@pytest.mark.slow
def test_reference_set_times_on_average(reference_footprints):
    ms = [abs(fp.estimated_inference_ms / PUBLISHED[rel].h747_ms - 1) for rel, fp in reference_footprints.items()]
    assert sum(ms) / len(ms) < 0.11


@pytest.mark.slow
def test_core_and_clock_scaling_on_f769(assets):
    # the same EfficientNet on a 216 MHz Cortex-M7 board: 259.5 ms published (144.96 ms at 400 MHz)
    fp = estimate_footprint(
        assets / "models/cubeai_reference/st_efficientnet_lc_v1_128_tfs_int8.tflite", board="STM32F769I-DISCO"
    )
    assert fp.estimated_inference_ms == pytest.approx(259.5, rel=0.15)


@pytest.mark.slow
def test_st_flowers_tflite_matches_published_stm32cubeai_figures(flowers_st_tflite):
    fp = estimate_footprint(flowers_st_tflite)
    assert fp.weights_flash_kib == pytest.approx(406.86, rel=0.01)
    assert fp.activation_ram_kib == pytest.approx(225.17, rel=0.02)  # STM32Cube.AI 8.1's figure
    assert fp.float_weights_kib > 3.5 * fp.weights_flash_kib
    fit = board_fit("NUCLEO-F401RE", fp)
    assert fit["weights_fit"] and not fit["activations_fit"]  # 512 KiB flash, 96 KiB RAM
    assert fit["ram_headroom_kib"] < 0 and fit["ram_headroom_pct"] < 0
    assert board_fit("STM32H747I-DISCO", fp)["activations_fit"]


@pytest.mark.slow
def test_qdq_onnx_is_comparable_to_tflite(flowers_onnx, flowers_st_tflite, tmp_path):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class RandomImages(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                [
                    {"input_1": np.random.default_rng(i).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)}
                    for i in range(2)
                ]
            )

        def get_next(self):
            return next(self.batches, None)

    qdq = tmp_path / "flowers_qdq.onnx"
    quantize_static(
        str(flowers_onnx),
        str(qdq),
        RandomImages(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    onnx_fp, tflite_fp = estimate_footprint(qdq), estimate_footprint(flowers_st_tflite)
    float_fp = estimate_footprint(flowers_onnx)
    assert onnx_fp.weights_flash_kib == pytest.approx(tflite_fp.weights_flash_kib, rel=0.1)
    assert onnx_fp.activation_ram_kib == pytest.approx(tflite_fp.activation_ram_kib, rel=0.1)
    assert onnx_fp.macc == pytest.approx(tflite_fp.macc, rel=0.1)
    assert onnx_fp.cycles_m7 == pytest.approx(tflite_fp.cycles_m7, rel=0.02)  # NCHW Conv(group) = depthwise
    # the QDQ model's peak is its float input beside its int8 copy (192 + 48 KiB); the float model's is the
    # int8 plan at 4 bytes per activation
    assert onnx_fp.activation_ram_kib == pytest.approx((128 * 128 * 3 * 5) / 1024, rel=0.01)
    assert float_fp.activation_ram_kib == pytest.approx(4 * tflite_fp.activation_ram_kib, rel=0.05)
    assert float_fp.weights_flash_kib == onnx_fp.float_weights_kib
