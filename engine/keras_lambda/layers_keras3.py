"""`TensorExpression` for Keras 3: a recognised Lambda's expression, computed with `keras.ops`."""

import operator
from typing import Any

import keras

from engine.keras_lambda.known_functions import evaluate

FUNCTIONS = {"clip": keras.ops.clip, "relu6": keras.ops.relu6, "relu": keras.ops.relu, "sigmoid": keras.ops.sigmoid,
             "minimum": keras.ops.minimum, "maximum": keras.ops.maximum, "add": operator.add, "sub": operator.sub,
             "mul": operator.mul, "div": operator.truediv, "neg": operator.neg}


@keras.saving.register_keras_serializable(package="stquant")
class TensorExpression(keras.layers.Layer):
    """Computes a stored expression tree (see `engine.keras_lambda.known_functions`); no weights."""

    def __init__(self, expression: list, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expression = expression

    def call(self, inputs: Any, mask: Any = None) -> Any:  # Lambda nodes are stored with a `mask` argument
        return evaluate(self.expression, inputs, FUNCTIONS)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "expression": self.expression}
