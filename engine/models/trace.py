"""Trace a Keras model once as a `tf.function` and convert it to TFLite without a SavedModel export.

Passing the `tf.function` itself as the converter's trackable object keeps TensorFlow on its fast
graph-freezing path (`from_keras_model` exports a SavedModel of every layer: most of its time), and its freeze
skips wrapping the frozen graph back into a function (`library_internals.freeze_without_wrapping`) and the
conversion takes no Python stack traces of the graph's ops (`library_internals.convert_without_stack_traces`).
A `Trace` serves every conversion of its model (the float .tflite, the TFLite quantizer, tf2onnx): whoever holds
one passes it on, so that a model is traced once.
"""

import re
from typing import Any, TypeAlias

from engine.common.errors import EngineError
from engine.models.library_internals import convert_without_stack_traces, freeze_without_wrapping

Trace: TypeAlias = tuple[Any, Any, Any]  # (Keras model, its `serving_function`, that function's concrete function)


def serving_function(model: Any) -> Any:
    """The model as a `tf.function` with a dynamic batch dimension (one float32 image input)."""
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise EngineError(f"the model has {len(model.inputs)} inputs; an image classifier has one")
    shape = [None, *model.inputs[0].shape[1:]]
    name = re.sub(r"[^A-Za-z0-9_]", "_", (getattr(model.inputs[0], "name", "") or "input").split(":")[0])
    return tf.function(
        lambda images: model(images, training=False),
        autograph=False,
        input_signature=[tf.TensorSpec(shape, tf.float32, name=name)],
    )


def traced(model: Any, last: Trace | None = None) -> Trace:
    """The model's `Trace`: `last` when it is a trace of this very model, else a new one."""
    if last is not None and last[0] is model:
        return last
    serve = serving_function(model)
    return model, serve, serve.get_concrete_function()


def converter_for(model: Any, trace: Trace | None = None) -> Any:
    """A TFLiteConverter of the traced model (`trace` when it is of this model; settings left to the caller)."""
    import tensorflow as tf

    _, serve, concrete = traced(model, trace)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], serve)
    freeze_without_wrapping(converter)
    convert_without_stack_traces(converter)
    return converter


def float_tflite(model: Any, trace: Trace | None = None) -> bytes:
    """A float32 .tflite of the model (same graph, for fast batched inference with XNNPACK)."""
    tflite: bytes = converter_for(model, trace).convert()
    return tflite
