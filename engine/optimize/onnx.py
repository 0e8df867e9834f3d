"""Graph clean-up of float ONNX models before quantization: fold BatchNormalization into Conv."""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import numpy_helper

log = logging.getLogger(__name__)


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Return a copy of *model* with each BatchNormalization that solely follows a Conv folded into it.

    A BN is folded when its input comes from a Conv whose output feeds nothing else (and is not a
    graph output), and when the Conv weights, bias and BN parameters are initializers. Returns the
    new model and the number of BN nodes folded.
    """
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    graph = folded.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    graph_outputs = {out.name for out in graph.output}
    count = 0
    for bn in [node for node in graph.node if node.op_type == "BatchNormalization"]:
        conv = producers.get(bn.input[0])
        if conv is None or not _foldable(conv, bn, graph, initializers, graph_outputs):
            continue
        _fold(conv, bn, graph, initializers)
        graph.node.remove(bn)
        count += 1
    _drop_unused_initializers(graph)
    if count:
        log.info("folded %d BatchNormalization node(s) into Conv", count)
    return folded, count


def _foldable(
    conv: onnx.NodeProto | None,
    bn: onnx.NodeProto,
    graph: onnx.GraphProto,
    initializers: dict[str, onnx.TensorProto],
    graph_outputs: set[str],
) -> bool:
    if conv is None or conv.op_type != "Conv" or len(bn.output) != 1:
        return False
    if conv.output[0] in graph_outputs or sum(conv.output[0] in n.input for n in graph.node) != 1:
        return False
    return all(name in initializers for name in [*conv.input[1:], *bn.input[1:5]] if name)


def _fold(
    conv: onnx.NodeProto, bn: onnx.NodeProto, graph: onnx.GraphProto, initializers: dict[str, onnx.TensorProto]
) -> None:
    gamma, beta, mean, variance = (
        numpy_helper.to_array(initializers[name]).astype(np.float64) for name in bn.input[1:5]
    )
    epsilon = next((attr.f for attr in bn.attribute if attr.name == "epsilon"), 1e-5)
    scale = gamma / np.sqrt(variance + epsilon)
    weight_init = initializers[conv.input[1]]
    weight = numpy_helper.to_array(weight_init)
    has_bias = len(conv.input) > 2 and conv.input[2]
    bias = numpy_helper.to_array(initializers[conv.input[2]]).astype(np.float64) if has_bias else np.zeros_like(mean)
    new_weight = (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(weight.dtype)
    new_bias = ((bias - mean) * scale + beta).astype(weight.dtype)
    weight_name, bias_name = f"{conv.input[1]}_bnfolded_{bn.name}", f"{conv.name}_bias_bnfolded_{bn.name}"
    graph.initializer.extend(
        [numpy_helper.from_array(new_weight, weight_name), numpy_helper.from_array(new_bias, bias_name)]
    )
    initializers[weight_name] = graph.initializer[-2]
    initializers[bias_name] = graph.initializer[-1]
    conv.input[1] = weight_name
    if has_bias:
        conv.input[2] = bias_name
    else:
        conv.input.append(bias_name)
    conv.output[0] = bn.output[0]


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)
    for info in [
        info for info in graph.input if info.name not in used and info.name in {i.name for i in graph.initializer}
    ]:
        graph.input.remove(info)
