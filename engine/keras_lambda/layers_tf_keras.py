"""`TensorExpression` for tf_keras: a recognised Lambda's expression, computed with TensorFlow functions."""

import operator
from typing import Any

import tensorflow as tf
import tf_keras

from engine.keras_lambda.known_functions import evaluate

FUNCTIONS = {"clip": tf.clip_by_value, "relu6": tf.nn.relu6, "relu": tf.nn.relu, "sigmoid": tf.math.sigmoid,
             "minimum": tf.minimum, "maximum": tf.maximum, "add": operator.add, "sub": operator.sub,
             "mul": operator.mul, "div": operator.truediv, "neg": operator.neg}


@tf_keras.utils.register_keras_serializable(package="stquant")
class TensorExpression(tf_keras.layers.Layer):
    """Computes a stored expression tree (see `engine.keras_lambda.known_functions`); no weights."""

    def __init__(self, expression: list, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expression = expression

    def call(self, inputs: Any) -> Any:
        return evaluate(self.expression, inputs, FUNCTIONS)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "expression": self.expression}
