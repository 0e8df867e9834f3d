"""Per-layer signal-to-quantization-noise ratio (SQNR) of an int8 model against its float original.

The figures are local: each quantized layer output (dequantized) is compared with the float layer
applied to that layer's own dequantized quantized input, so a layer that collapses stands out rather
than everything after it. A few batches suffice. `engine.evaluation.layer_report` is the entry point.
For a .tflite, the float layers are the Keras model's, or the ops of the float .tflite the converter made of that
model (`FloatGraph`: the same figures without loading the Keras model).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.common.threads import ordered_map, split_cores
from engine.models.files import KerasConfig
from engine.models.library_internals import KERAS_METADATA
from engine.models.load import KerasModel

if TYPE_CHECKING:  # onnx is imported when a report is made
    from onnx import GraphProto, NodeProto, TensorProto

TensorDetail = dict[str, Any]  # one entry of LiteRT's Interpreter.get_tensor_details()
FloatLayers = Callable[..., Any]  # Keras layers called as one function: (inputs, training=False) -> outputs
References = Callable[[Iterator[list[np.ndarray]]], Iterator[np.ndarray]]  # each probe's float output, in order
REPORTED_ACTIVATIONS = ("linear", "relu", "relu6")  # layers with another activation are not reported
ONNX_PROBE_BATCH = 1  # images per ONNX Runtime run: each returns two values of every quantized activation
ONNX_PROBE_RUNS = 2  # ONNX Runtime runs at once (`engine.common.threads.split_cores`)


@dataclass(frozen=True)
class LayerError:
    """SQNR in dB of one layer output (higher is better; +inf when exact)."""

    layer: str
    op: str
    sqnr_db: float


class _Sqnr:
    """Accumulates signal and noise energy over batches."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0

    def add(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        reference = reference.astype(np.float64).reshape(-1)
        self.signal += float(np.sum(reference**2))
        self.noise += float(np.sum((reference - quantized.astype(np.float64).reshape(-1)) ** 2))

    def db(self) -> float:
        if self.noise == 0.0:
            return math.inf
        return 10.0 * math.log10(max(self.signal, 1e-30) / self.noise)


CHUNK = 4


def _single_images(batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for batch in batches:
        for image in np.asarray(batch, dtype=np.float32):
            yield image[None]


def _worst_first(errors: list[LayerError]) -> list[LayerError]:
    return sorted(errors, key=lambda e: e.sqnr_db)


@dataclass(frozen=True)
class FloatGraph:
    """The float .tflite a Keras model was converted to (`QuantResult.float_tflite`) and the model's reported layers
    in model order (`reported_layers`): what `tflite_layer_errors` needs instead of the Keras model itself.
    `keras3`: converted from a Keras 3 model (its layer scopes are suffixed)."""

    tflite: bytes
    layers: list[str]
    keras3: bool


def reported_layers(config: KerasConfig) -> list[str] | None:
    """The names of the layers of a stored model config that the report covers (those computing a linear, ReLU or
    ReLU6 output), in model order; None when the config does not list its layers."""
    inner = config.get("config")
    entries = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(entries, list):
        return None
    names = []
    for entry in entries:
        layer = entry.get("config") if isinstance(entry, dict) else None
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
            return None
        if layer.get("activation", "linear") in REPORTED_ACTIVATIONS:
            names.append(layer["name"])
    return names


def tflite_layer_errors(
    float_model: KerasModel | FloatGraph, tflite_path: str | Path, batches: Iterable[np.ndarray]
) -> list[LayerError]:
    """Local SQNR of every int8 op of a TFLite model that maps to layers of *float_model*, worst first.

    Each op's int8 output (dequantized) is compared with the float Keras layers it implements,
    run on the op's own dequantized int8 input: the figure is the error the layer itself adds
    (weight and output rounding), so a collapsing layer stands out instead of everything after it.
    TFLite names a fused op's output after all the Keras layers fused into it ("…/re_lu/Relu6;
    …/conv2d/Conv2D"; Keras 3 scopes carry a suffix, see `keras_layer_of_scope`); the op is
    reported under the first of them. *float_model*: a Keras 3 or tf_keras model, or the `FloatGraph` the quantized
    model was made from (its float op of the same output name, fed the same inputs, is the float layers, fused as
    the int8 op is); *batches* are float inputs of the model (NHWC).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(tflite_path),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    if isinstance(float_model, FloatGraph):
        probes, references = _float_graph_probes(interpreter, tensors, float_model)
    else:
        probes = _tflite_probes(interpreter, tensors, float_model)
        references = _keras_references(probes)
    inp = interpreter.get_input_details()[0]
    totals = [_Sqnr() for _ in probes]
    images = list(_single_images(batches))
    for start in range(0, len(images), CHUNK):  # a few images at a time: memory stays small
        inputs: list[list[list[np.ndarray]]] = [[[] for _ in probe.inputs] for probe in probes]
        outputs: list[list[np.ndarray]] = [[] for _ in probes]
        for image in images[start : start + CHUNK]:
            interpreter.set_tensor(inp["index"], _quantize_input(image, inp))
            interpreter.invoke()
            for probe, probe_inputs, probe_outputs in zip(probes, inputs, outputs):  # int8 copies: 1/4 of float
                for index, collected in zip(probe.inputs, probe_inputs):
                    collected.append(interpreter.get_tensor(index))
                probe_outputs.append(interpreter.get_tensor(probe.output))
        stacked = (
            [_dequantized(collected, tensors[index]) for index, collected in zip(probe.inputs, probe_inputs)]
            for probe, probe_inputs in zip(probes, inputs)
        )
        for probe, reference, probe_outputs, total in zip(probes, references(stacked), outputs, totals):
            value = _dequantized(probe_outputs, tensors[probe.output])
            if reference.size == value.size:
                total.add(reference, value)
    return _worst_first(
        [LayerError(probe.layer, probe.op, total.db()) for probe, total in zip(probes, totals) if total.signal > 0]
    )


@dataclass
class _Probe:
    layer: str
    op: str
    inputs: list[int]
    output: int
    float_layers: FloatLayers | None = None  # the Keras layers (None: the float graph's op)


@dataclass
class _Int8Op:
    """An int8 op of the quantized model that implements `layers` (model order), reading `inputs` (produced by ops)."""

    op: dict[str, Any]
    output: int
    layers: list[str]
    inputs: list[int]


def _int8_ops(
    interpreter: Any, tensors: dict[int, TensorDetail], order: dict[str, int], keras3: bool
) -> Iterator[_Int8Op]:
    """The int8 ops (one output, quantized) whose output names layers of `order` (layer name -> position)."""
    from engine.models.library_internals import keras_layer_of_scope, tflite_ops

    ops = tflite_ops(interpreter)
    produced = {int(index) for op in ops for index in op["outputs"]}
    for op in ops:
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE") or len(op["outputs"]) != 1:
            continue
        index = int(op["outputs"][0])
        detail = tensors.get(index)
        if detail is None or detail["dtype"] not in (np.int8, np.uint8) or not detail["quantization"][0]:
            continue
        scopes = {
            keras_layer_of_scope(part, keras3) for piece in detail["name"].split(";") for part in piece.split("/")[:-1]
        }
        layers = sorted(scopes & order.keys(), key=lambda name: order[name])
        if layers:
            yield _Int8Op(op, index, layers, [int(i) for i in op["inputs"] if int(i) in produced])


def _tflite_probes(interpreter: Any, tensors: dict[int, TensorDetail], keras_model: KerasModel) -> list[_Probe]:
    """One probe per int8 op whose output names Keras layers: the op's tensors and the float sub-model."""
    from engine.models.library_internals import is_keras3, keras_of

    keras = keras_of(keras_model)
    order = {
        layer.name: i
        for i, layer in enumerate(keras_model.layers)
        if layer.get_config().get("activation", "linear") in REPORTED_ACTIVATIONS
    }
    probes: dict[tuple[str, str], _Probe] = {}
    for found in _int8_ops(interpreter, tensors, order, is_keras3(keras_model)):
        op, inputs = found.op, found.inputs
        originals = [keras_model.get_layer(name) for name in found.layers]
        first, last = originals[0], originals[-1]
        first_inputs = first.input if isinstance(first.input, (list, tuple)) else [first.input]
        if len(first_inputs) != len(inputs):
            continue
        chain = list(originals)
        if type(last).__name__ == "PerChannelClip" and first is not last and op["op_name"] != "MINIMUM":
            chain[-1] = keras.layers.ReLU()  # the clip's ReLU is fused here, its MINIMUM is the next op
        float_layers = _in_sequence(originals, chain) or _sub_model(keras, first, last, chain[-1])
        if float_layers is not None:
            probes[(first.name, last.name)] = _Probe(first.name, op["op_name"], inputs, found.output, float_layers)
    return list(probes.values())


def _keras_references(probes: list[_Probe]) -> References:
    """Each probe's Keras layers applied to its stacked inputs, one probe at a time."""

    def references(stacked: Iterator[list[np.ndarray]]) -> Iterator[np.ndarray]:
        for probe, arrays in zip(probes, stacked):
            assert probe.float_layers is not None
            yield np.asarray(probe.float_layers(arrays if len(arrays) > 1 else arrays[0], training=False))

    return references


def _float_graph_probes(
    interpreter: Any, tensors: dict[int, TensorDetail], graph: FloatGraph
) -> tuple[list[_Probe], References]:
    """One probe per int8 op whose output names reported layers and whose float op (same output name, same inputs
    from ops) is in `graph`; and the references: those float ops run on the probes' own inputs (`_CutGraph`)."""
    cut = _CutGraph(graph.tflite)
    order = {name: i for i, name in enumerate(graph.layers)}
    probes: dict[tuple[str, str], tuple[_Probe, Any]] = {}
    for found in _int8_ops(interpreter, tensors, order, graph.keras3):
        positions = [p for p, index in enumerate(found.op["inputs"]) if int(index) in found.inputs]
        float_op = cut.float_op(tensors[found.output]["name"], len(found.op["inputs"]), positions)
        if float_op is not None:
            probe = _Probe(found.layers[0], found.op["op_name"], found.inputs, found.output)
            probes[(found.layers[0], found.layers[-1])] = probe, float_op
    return [probe for probe, _ in probes.values()], cut.references([op for _, op in probes.values()])


class _CutGraph:
    """The float .tflite cut down to chosen ops, each reading its activation inputs from new model inputs of its own,
    so that one LiteRT run computes every chosen op on the inputs it is given, and nothing else."""

    def __init__(self, content: bytes) -> None:
        from engine.models.library_internals import litert_schema

        self.schema = litert_schema()
        self.model = self.schema.ModelT.InitFromObj(self.schema.Model.GetRootAs(content, 0))
        self.graph = self.model.subgraphs[0]
        self.by_output = {
            _text(self.graph.tensors[op.outputs[0]].name): op for op in self.graph.operators if len(op.outputs) == 1
        }

    def float_op(self, output_name: str, arity: int, positions: list[int]) -> Any:
        """The float op computing `output_name`, when it has `arity` inputs, activations at `positions` (else None)."""
        op = self.by_output.get(output_name)
        if op is None or len(op.inputs) != arity or not positions:
            return None
        activations = [p for p, index in enumerate(op.inputs) if index >= 0 and self._is_activation(int(index))]
        return op if activations == positions else None

    def _is_activation(self, index: int) -> bool:
        """A float tensor computed at run time (no constant data)."""
        tensor = self.graph.tensors[index]
        buffer = self.model.buffers[tensor.buffer] if tensor.buffer < len(self.model.buffers) else None
        has_data = buffer is not None and buffer.data is not None and len(buffer.data) > 0
        return bool(tensor.type == self.schema.TensorType.FLOAT32 and not has_data)

    def _cut(self, op: Any) -> list[int]:
        """Give `op` a new model input for each of its activation inputs; those inputs."""
        op.inputs = [int(index) for index in op.inputs]
        fresh = []
        for p, index in enumerate(op.inputs):
            if index < 0 or not self._is_activation(index):
                continue
            source = self.graph.tensors[index]
            tensor = self.schema.TensorT()
            tensor.shape, tensor.shapeSignature = source.shape, source.shapeSignature
            tensor.type, tensor.buffer = self.schema.TensorType.FLOAT32, 0
            tensor.name = f"{_text(source.name)}/stquant_input_{len(self.graph.tensors)}".encode()
            self.graph.tensors.append(tensor)
            op.inputs[p] = len(self.graph.tensors) - 1
            fresh.append(op.inputs[p])
        return fresh

    def cut_down(self, ops: list[Any]) -> tuple[bytes, list[list[int]]]:
        """A .tflite of `ops` (float ops of this graph) only, each reading its activation inputs from new model inputs,
        their outputs the model's outputs (no other op runs, no other activation takes memory); and those inputs, per
        op."""
        import flatbuffers

        fresh = [self._cut(op) for op in ops]
        self.graph.operators = list(ops)
        self.graph.inputs = [i for inputs in fresh for i in inputs]
        self.graph.outputs = list(dict.fromkeys(int(op.outputs[0]) for op in ops))
        self.model.signatureDefs = []  # they name the model's own inputs and outputs
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output()), fresh

    def references(self, ops: list[Any]) -> References:
        """The outputs of `ops` (float ops of this graph), each run on the inputs given for it: one run per image of
        the graph of these ops only (`cut_down`)."""
        from ai_edge_litert.interpreter import Interpreter

        content, fresh = self.cut_down(ops)
        outputs = [int(op.outputs[0]) for op in ops]
        interpreter = Interpreter(model_content=content)
        for detail in interpreter.get_input_details():  # one image per run: the float tensors of every op cut loose
            interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
        interpreter.allocate_tensors()

        def references(stacked: Iterator[list[np.ndarray]]) -> Iterator[np.ndarray]:
            given = list(stacked)
            runs: list[list[np.ndarray]] = [[] for _ in outputs]
            for image in range(len(given[0][0]) if given else 0):
                for inputs, arrays in zip(fresh, given):
                    for index, array in zip(inputs, arrays):
                        interpreter.set_tensor(index, array[image : image + 1])
                interpreter.invoke()
                for run, output in zip(runs, outputs):
                    run.append(interpreter.get_tensor(output))
            given.clear()
            for run in runs:
                yield np.concatenate(run)
                run.clear()

        return references


def _text(name: bytes | str | None) -> str:
    return name.decode() if isinstance(name, bytes) else name or ""


def _in_sequence(originals: list[Any], chain: list[Any]) -> FloatLayers | None:
    """`chain` as one function when each of the model's layers `originals` reads the output of the one
    before (a fused op's usual shape): calling the layers directly is much cheaper than a sub-model per op."""
    try:
        if any(layer.input is not before.output for before, layer in itertools.pairwise(originals)):
            return None
    except (AttributeError, ValueError):  # a layer used more than once has no single input
        return None

    def run(inputs: Any, training: bool = False) -> Any:
        for layer in chain:
            inputs = layer(inputs, training=training)
        return inputs

    return run


def _sub_model(keras: Any, first: Any, last: Any, final: Any) -> FloatLayers | None:
    """The part of the model from `first`'s input to `last`'s output (to `final` applied to `last`'s input
    when `final` replaces `last`), or None when that is not a closed part of the graph."""
    try:
        model: FloatLayers = keras.Model(first.input, last.output if final is last else final(last.input))
        return model
    except ValueError:
        return None


def _dequantized(values: list[np.ndarray], detail: TensorDetail) -> np.ndarray:
    """The quantized tensor values of several images, concatenated and dequantized to float32."""
    scale, zero_point = detail["quantization"]
    dequantized: np.ndarray = (np.concatenate(values).astype(np.float32) - zero_point) * scale
    return dequantized


def _quantize_input(image: np.ndarray, detail: TensorDetail) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return image
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    quantized: np.ndarray = np.clip(np.round(image / scale + zero_point), info.min, info.max).astype(detail["dtype"])
    return quantized


def onnx_layer_errors(
    float_onnx_path: str | Path, qdq_onnx_path: str | Path, batches: Iterable[np.ndarray]
) -> list[LayerError]:
    """Local SQNR of every quantized activation of a QDQ model, worst first.

    For each op output the QDQ model quantizes (the input of a QuantizeLinear), the dequantized
    value is compared with the float model's own ops applied to the dequantized inputs of that
    op in the QDQ model, with float weights: the error the op itself adds (weight and output
    rounding), as for TFLite. The float ops are taken from *float_onnx_path* (the model the QDQ
    one was made from; tensor names match), which also restores activations the quantizer folded
    into the op's output range (Relu/Clip). Everything runs in one ONNX Runtime session, with
    graph optimizations that could fuse QDQ nodes turned off (the same fake-quantized float
    arithmetic on any CPU), on a few images at once (`engine.common.threads`), their sums added in image order.
    *batches* are in the models' input layout.
    """
    import onnx
    import onnxruntime as ort

    float_model = onnx.load(str(float_onnx_path))
    keras3 = any(p.key == KERAS_METADATA and p.value == "3" for p in float_model.metadata_props)
    probe_model = onnx.load(str(qdq_onnx_path))
    probes = _add_float_references(probe_model.graph, float_model.graph, keras3)
    runs, threads = split_cores(ONNX_PROBE_RUNS)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = threads
    options.enable_mem_pattern = False  # a planned block per run at once would add up; tensors come from one arena
    session = ort.InferenceSession(probe_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    names = [name for probe in probes for name in (probe.quantized, probe.reference)]

    def measure(chunk: np.ndarray) -> list[_Sqnr]:
        values = session.run(names, {model_input.name: chunk})
        parts = [_Sqnr() for _ in probes]
        for i, part in enumerate(parts):
            part.add(values[2 * i + 1], values[2 * i])
        return parts

    totals = [_Sqnr() for _ in probes]
    for parts in ordered_map(measure, _onnx_chunks(batches, fixed_batch), runs):
        for total, part in zip(totals, parts):  # in the order of the images: the same sums as one run at a time
            total.signal += part.signal
            total.noise += part.noise
    return _worst_first(
        [LayerError(probe.layer, probe.op, total.db()) for probe, total in zip(probes, totals) if total.signal > 0]
    )


def _onnx_chunks(batches: Iterable[np.ndarray], fixed_batch: int | None) -> Iterator[np.ndarray]:
    """The images of `batches` in runs of ONNX_PROBE_BATCH (`fixed_batch` when the model fixes it; whole runs only)."""
    for batch in batches:
        batch = np.asarray(batch, dtype=np.float32)
        step = fixed_batch or min(len(batch), ONNX_PROBE_BATCH)
        yield from (batch[i : i + step] for i in range(0, len(batch) - step + 1, step))


@dataclass
class _OnnxProbe:
    layer: str
    op: str
    quantized: str
    reference: str


_REF = "__stquant_float"
_MAX_FLOAT_NODES = 64


def _add_float_references(graph: GraphProto, float_graph: GraphProto, keras3: bool) -> list[_OnnxProbe]:
    """Add to the QDQ *graph* a float copy of each quantized op, fed with its dequantized inputs; expose both."""
    from onnx import ValueInfoProto, helper

    from engine.models.library_internals import qdq_source_tensor

    producers = {out: node for node in graph.node for out in node.output}
    float_producers = {out: node for node in float_graph.node for out in node.output}
    float_inits = {init.name: init for init in float_graph.initializer}
    dequantized: dict[str, str] = {}  # float tensor name -> the QDQ model's dequantized copy of it
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in producers:
            quantize = producers[node.input[0]]
            if quantize.op_type == "QuantizeLinear":
                dequantized[qdq_source_tensor(quantize.input[0])] = node.output[0]
    probes: list[_OnnxProbe] = []
    added_nodes: list[NodeProto] = []
    added_inits: set[str] = set()
    for node in list(graph.node):
        if node.op_type != "QuantizeLinear" or node.input[0] not in producers:
            continue
        op = producers[node.input[0]]
        tensor = qdq_source_tensor(node.input[0])
        if op.op_type in ("QuantizeLinear", "DequantizeLinear") or tensor not in float_producers:
            continue
        nodes = _float_nodes_for(tensor, float_producers, float_inits, dequantized)
        if nodes is None:
            continue
        for float_node in nodes:
            copy = helper.make_node(
                float_node.op_type,
                [_ref_input(name, dequantized, float_inits, added_inits, graph) for name in float_node.input],
                [f"{name}{_REF}" for name in float_node.output],
                domain=float_node.domain,
            )
            copy.attribute.extend(float_node.attribute)
            added_nodes.append(copy)
        quantized_output = dequantized.get(tensor)
        if quantized_output is None:
            continue
        graph.output.extend([ValueInfoProto(name=quantized_output), ValueInfoProto(name=f"{tensor}{_REF}")])
        probes.append(
            _OnnxProbe(_layer_name(op.name or tensor, keras3), _op_label(op), quantized_output, f"{tensor}{_REF}")
        )
    graph.node.extend(_unique(added_nodes))
    return probes


def _float_nodes_for(
    tensor: str, float_producers: dict[str, NodeProto], float_inits: dict[str, TensorProto], dequantized: dict[str, str]
) -> list[NodeProto] | None:
    """The float nodes computing *tensor* from dequantized tensors and initializers, in order (None if
    that needs more than `_MAX_FLOAT_NODES` nodes or a tensor the QDQ model lacks)."""
    order: list[NodeProto] = []
    done: set[str] = set()
    stack = [(tensor, False)]
    while stack:
        name, expanded = stack.pop()
        node = float_producers[name]
        if expanded:
            if name not in done:
                done.update(node.output)
                order.append(node)
            continue
        stack.append((name, True))
        for inp in node.input:
            if not inp or inp in dequantized or inp in float_inits or inp in done:
                continue
            if inp not in float_producers:
                return None
            stack.append((inp, False))
        if len(stack) > _MAX_FLOAT_NODES:
            return None
    return order


def _ref_input(
    name: str, dequantized: dict[str, str], float_inits: dict[str, TensorProto], added: set[str], graph: GraphProto
) -> str:
    """Where the float copy reads *name*: the dequantized tensor, a copied float initializer, or another copy."""
    if not name:
        return name
    if name in dequantized:
        return dequantized[name]
    if name in float_inits and name not in added:
        from onnx import TensorProto

        init = TensorProto()
        init.CopyFrom(float_inits[name])
        init.name = f"{name}{_REF}"
        graph.initializer.append(init)
        added.add(name)
    return f"{name}{_REF}"


def _unique(nodes: list[NodeProto]) -> list[NodeProto]:
    """Nodes in order, each output computed once (probes may share upstream float nodes)."""
    kept: list[NodeProto] = []
    outputs: set[str] = set()
    for node in nodes:
        if node.output[0] not in outputs:
            outputs.update(node.output)
            kept.append(node)
    return kept


def _layer_name(node_name: str, keras3: bool) -> str:
    """The Keras layer name in a tf2onnx node name ("model/block_1_depthwise/depthwise"), else the node name
    (the footprint names its layers the same way)."""
    from engine.models.library_internals import layer_of_node

    return layer_of_node(node_name, keras3)


def _op_label(node: NodeProto) -> str:
    group = next((attr.i for attr in node.attribute if attr.name == "group"), 1)
    return f"{node.op_type} (depthwise)" if node.op_type == "Conv" and group > 1 else node.op_type
