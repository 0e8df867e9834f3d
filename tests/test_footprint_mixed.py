"""Mixed float/int8 models: a .tflite whose depthwise convolution TensorFlow's selective quantization keeps
in float, and a QDQ .onnx whose depthwise node ONNX Runtime's quantizer leaves out. Each float tensor is
planned at 4 bytes, the (DE)QUANTIZE ops around the float layer get their own buffers, the float kernel takes
no int8 scratch, its weights count 4 bytes and its cycles are the float kernel's; every figure is worked
out by hand in the test."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.footprint import estimate_footprint
from engine.footprint.graph import Graph, conv_scratch_bytes, depthwise_scratch_bytes
from engine.footprint.memory_planner import plan_activations
from engine.footprint.onnx import read_onnx
from engine.footprint.tflite import read_tflite
from engine.footprint.timing import CYCLES, FLOAT_FACTOR, layer_cycles
from tests.cubeai_published import ST_MNIST_MS

# The float depthwise convolution's step sets the peak of both models: its 10x10x4 float padded copy
# (1600 B) written over the 8x8x4 float DEQUANTIZE output it copies (1024 B, which dies there), and its
# 8x8x4 float output (rows of 128 B over the copy's rows of 160 B, stride 1, the copy already padded)
# ending one output row past the copy: 1600 + 128 B. Every other step needs less (int8 conv: float input
# 768 B is gone, 192 + 256 B + 380 B scratch; DEQUANTIZE: 256 + 1024 B; QUANTIZE after the depthwise:
# 1024 + 256 B).
MIXED_ARENA = 1600 + 128
CONV1_SCRATCH = conv_scratch_bytes(3, 9, 4, pointwise=False)  # 4*3*9 + 14*4 + 2*108 = 380 B
# weights: int8 3x3 conv 108 + 4 int32 biases, FLOAT depthwise 36 + 4 biases at 4 bytes, int8 1x1 conv
# 32 + 8 int32 biases, int8 dense 16 + 2 int32 biases
MIXED_WEIGHT_BYTES = (108 + 16) + (36 + 4) * 4 + (32 + 32) + (16 + 8)


@pytest.fixture(scope="module")
def mixed_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8x8x3 -> conv3x3(4)+relu (int8) -> depthwise3x3 (float) -> conv1x1(8) (int8) -> mean -> dense(2)."""
    import tensorflow as tf

    keras = tf.keras
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer="ones")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", bias_initializer="ones")(x)  # a zero bias would be dropped
    x = keras.layers.Conv2D(8, 1, bias_initializer="ones")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, bias_initializer="ones")(x))
    rng = np.random.default_rng(0)

    def data():
        return ([rng.random((1, 8, 8, 3), np.float32)] for _ in range(4))

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = data
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["DEPTHWISE_CONV_2D"])
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=data, debug_options=options)
    path = tmp_path_factory.mktemp("mixed") / "mixed.tflite"
    path.write_bytes(debugger.get_nondebug_quantized_model())
    return path


@pytest.fixture(scope="module")
def mixed_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same network in ONNX (NCHW), QDQ int8 but for the depthwise node, left out of quantization."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)

    def weight(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3 + 0.1).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=4, name="dw"),
        helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], name="pointwise"),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["y"], transB=1, name="dense"),
    ]
    shapes = {"w1": (4, 3, 3, 3), "b1": (4,), "w2": (4, 1, 3, 3), "b2": (4,), "w3": (8, 4, 1, 1), "b3": (8,)}
    shapes |= {"w4": (2, 8), "b4": (2,)}
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weight(name, shape) for name, shape in shapes.items()],
    )
    folder = tmp_path_factory.mktemp("mixed_onnx")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, folder / "float.onnx")

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": rng.random((1, 3, 8, 8), np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    path = folder / "mixed_qdq.onnx"
    quantize_static(
        str(folder / "float.onnx"),
        str(path),
        Images(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=["dw"],
    )
    return path


def _bytes(graph: Graph, op_index: int) -> tuple[list[int], list[int]]:
    op = graph.ops[op_index]
    return [graph.tensors[n].nbytes for n in op.inputs], [graph.tensors[n].nbytes for n in op.outputs]


def test_mixed_tflite_plans_each_tensor_at_its_own_size(mixed_tflite: Path) -> None:
    graph = read_tflite(mixed_tflite)
    kinds = [op.kind for op in graph.ops]
    assert kinds == [
        "QUANTIZE",  # the float input (the debugger keeps float inputs and outputs)
        "CONV_2D",
        "DEQUANTIZE",
        "DEPTHWISE_CONV_2D",  # float
        "QUANTIZE",
        "CONV_2D",
        "MEAN",
        "FULLY_CONNECTED",
        "DEQUANTIZE",
    ]
    assert _bytes(graph, 0) == ([8 * 8 * 3 * 4], [8 * 8 * 3])  # float input, 4 bytes per element
    assert _bytes(graph, 2) == ([8 * 8 * 4], [8 * 8 * 4 * 4])  # DEQUANTIZE: int8 in, its own float buffer out
    assert _bytes(graph, 3) == ([8 * 8 * 4 * 4], [8 * 8 * 4 * 4])  # the float depthwise
    assert _bytes(graph, 4) == ([8 * 8 * 4 * 4], [8 * 8 * 4])  # QUANTIZE back to int8
    assert [op.scratch_bytes for op in graph.ops[1:6]] == [CONV1_SCRATCH, 0, 0, 0, 4 * 4 + 10 * 8]
    assert plan_activations(graph, lambda t: t.nbytes).arena_bytes == MIXED_ARENA
    fp = estimate_footprint(mixed_tflite)
    assert fp.activation_ram_kib == round(MIXED_ARENA / 1024, 2)
    assert fp.weights_flash_kib == round(MIXED_WEIGHT_BYTES / 1024, 2)
    assert fp.peak is not None and fp.peak.layer == 3
    assert fp.peak.buffers == "padded copy 10x10x4 float + output 8x8x4 float"


def test_mixed_onnx_gets_real_converters_around_the_excluded_node(mixed_onnx: Path) -> None:
    graph = read_onnx(mixed_onnx)
    assert [op.kind for op in graph.ops] == [
        "QuantizeLinear",  # the float graph input
        "Conv",  # int8 (its ReLU fused by the quantizer)
        "DequantizeLinear",  # a real op: its reader is float
        "Conv",  # the excluded depthwise node, float
        "QuantizeLinear",  # a real op: it quantizes a float tensor
        "Conv",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
        "DequantizeLinear",  # the float graph output
    ]
    assert _bytes(graph, 2) == ([4 * 8 * 8], [4 * 8 * 8 * 4])
    assert _bytes(graph, 3) == ([4 * 8 * 8 * 4], [4 * 8 * 8 * 4])
    assert _bytes(graph, 4) == ([4 * 8 * 8 * 4], [4 * 8 * 8])
    assert [op.scratch_bytes for op in graph.ops[1:6]] == [CONV1_SCRATCH, 0, 0, 0, 4 * 4 + 10 * 8]
    assert plan_activations(graph, lambda t: t.nbytes).arena_bytes == MIXED_ARENA
    assert estimate_footprint(mixed_onnx).weights_flash_kib == round(MIXED_WEIGHT_BYTES / 1024, 2)


def test_fully_quantized_onnx_keeps_no_converter_inside(mixed_onnx: Path, tmp_path: Path) -> None:
    # the same network with every node quantized: only the graph input's Q and output's DQ are ops
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"x": rng.random((1, 3, 8, 8), np.float32)} for _ in range(2)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    path = tmp_path / "int8_qdq.onnx"
    quantize_static(str(mixed_onnx.parent / "float.onnx"), str(path), Images(), quant_format=QuantFormat.QDQ)
    graph = read_onnx(path)
    kinds = [op.kind for op in graph.ops]
    assert kinds == [
        "QuantizeLinear",
        "Conv",
        "Conv",
        "Conv",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
        "DequantizeLinear",
    ]
    assert all(graph.tensors[name].itemsize == 1 for op in graph.ops[1:-1] for name in op.inputs + op.outputs)
    assert graph.ops[2].scratch_bytes == depthwise_scratch_bytes(4)  # int8 depthwise: int8 scratch


@pytest.mark.parametrize("reader", [read_tflite, read_onnx])
def test_float_layers_cost_float_cycles(mixed_tflite: Path, mixed_onnx: Path, reader) -> None:
    graph = reader(mixed_tflite if reader is read_tflite else mixed_onnx)
    cycles = layer_cycles(graph)
    assert cycles[3] == round(CYCLES["depthwise"] * FLOAT_FACTOR * 8 * 8 * 4 * 9)  # the float depthwise
    assert cycles[1] == round(CYCLES["conv"] * 8 * 8 * 4 * 27)  # the int8 convolution
    assert cycles[5] == round(CYCLES["conv"] * 8 * 8 * 8 * 4)


def test_float_factor_is_the_published_float_over_int8_time() -> None:
    # ST MNIST v1 on STM32H747I-DISCO, STM32Cube.AI 7.3 (benchmarks/fit_inference_time.py prints the check)
    assert round(ST_MNIST_MS["float"] / ST_MNIST_MS["int8"], 2) == FLOAT_FACTOR
