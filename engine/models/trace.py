"""Trace a Keras model once as a `tf.function` and convert it to TFLite without a SavedModel export.

Passing the `tf.function` itself as the converter's trackable object keeps TensorFlow on its fast
graph-freezing path (`from_keras_model` exports a SavedModel of every layer: most of its time).
"""

import re
from typing import Any

from engine.common.errors import EngineError


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


def converter_for(model: Any) -> Any:
    """A TFLiteConverter of the traced model (settings left to the caller)."""
    import tensorflow as tf

    serve = serving_function(model)
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], serve)


def float_tflite(model: Any) -> bytes:
    """A float32 .tflite of the model (same graph, for fast batched inference with XNNPACK)."""
    tflite: bytes = converter_for(model).convert()
    return tflite
