"""`TensorExpression`: a recognised Lambda's expression as a layer of either Keras (Keras 3 or tf_keras)."""

import functools
import operator
from collections.abc import Callable
from typing import Any

from engine.models.keras_lambda.known_functions import evaluate

ARITHMETIC: dict[str, Callable[..., Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "neg": operator.neg,
}


def tensor_functions(keras: Any) -> dict[str, Callable[..., Any]]:
    """The functions an expression is computed with: `keras.ops` for Keras 3, TensorFlow's for tf_keras."""
    if keras.__name__ == "tf_keras":
        import tensorflow as tf

        return {
            "clip": tf.clip_by_value,
            "relu6": tf.nn.relu6,
            "relu": tf.nn.relu,
            "sigmoid": tf.math.sigmoid,
            "minimum": tf.minimum,
            "maximum": tf.maximum,
            **ARITHMETIC,
        }
    ops = keras.ops
    return {
        "clip": ops.clip,
        "relu6": ops.relu6,
        "relu": ops.relu,
        "sigmoid": ops.sigmoid,
        "minimum": ops.minimum,
        "maximum": ops.maximum,
        **ARITHMETIC,
    }


@functools.cache
def tensor_expression_class(keras: Any) -> type:
    """The `TensorExpression` layer class of one Keras package (`keras` or `tf_keras`), registered with it."""
    functions = tensor_functions(keras)

    class TensorExpression(keras.layers.Layer):  # type: ignore[misc]  # Keras is typed Any here
        """Computes a stored expression tree (see `engine.models.keras_lambda.known_functions`); no weights."""

        def __init__(self, expression: list[Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.expression = expression

        def call(self, inputs: Any, mask: Any = None) -> Any:  # Keras 3 stores Lambda nodes with a `mask` argument
            return evaluate(self.expression, inputs, functions)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "expression": self.expression}

    registered: type = keras.utils.register_keras_serializable(package="stquant")(TensorExpression)
    return registered
