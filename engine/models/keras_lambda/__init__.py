"""Lambda layers and custom layer classes in a stored Keras model config: recognise, refuse or rewrite.

Loading a Lambda layer runs the Python bytecode stored in the model file. Instead, each Lambda's
code is read as data (`bytecode`), matched against a small table of pure tensor functions
(`known_functions`), and a recognised Lambda is replaced in the config by our `TensorExpression`
layer (`layers`, for either Keras) before Keras deserialises it. An unrecognised Lambda, or
a layer class that is neither Keras' nor ours, is refused (InputError, exit 3) unless the user
trusts the model file (`--trust-model`); then it loads the normal way. Works on the JSON config
alone: no TensorFlow is imported here.
"""

from __future__ import annotations

import base64
import binascii
import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.common.errors import InputError
from engine.models.files import KerasConfig
from engine.models.keras_lambda.builtin_layers import BUILTIN_LAYERS
from engine.models.keras_lambda.bytecode import RUNNING_LAYOUT, read_code_candidates
from engine.models.keras_lambda.known_functions import Expression, NotRecognised, describe, recognise

OUR_LAYER = "TensorExpression"
REGISTERED_NAME = f"stquant>{OUR_LAYER}"
OUR_LAYERS = frozenset({OUR_LAYER, REGISTERED_NAME, "PerChannelClip", "stquant>PerChannelClip"})  # + optimize's
TRUST_HINT = "it was not run (pass --trust-model, or tick 'Trust code stored in this model file', to run it)"
_LAMBDA_ONLY_KEYS = (
    "function",
    "function_type",
    "module",
    "output_shape",
    "output_shape_type",
    "output_shape_module",
    "arguments",
    "mask",
)
_WRAPPED_KEYS = ("layer", "forward_layer", "backward_layer")
_THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class LambdaLayer:
    """One Lambda layer of a model: what its code computes, or why it is not recognised."""

    name: str
    expression: Expression | None = None
    written_by: str | None = None
    references: list[str] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recognised": self.expression is not None,
            "as": describe(self.expression) if self.expression is not None else None,
            "written_by": self.written_by,
            "references": self.references,
            "reason": self.reason,
        }


def model_layers(config: KerasConfig) -> Iterator[KerasConfig]:
    """Every layer entry of a stored model config, inside nested models and wrappers too."""
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict):
        return
    for layer in inner.get("layers") or []:
        if isinstance(layer, dict):
            yield layer
            yield from model_layers(layer)
    for key in _WRAPPED_KEYS:
        if isinstance(inner.get(key), dict):
            yield inner[key]
            yield from model_layers(inner[key])


def inspect_lambdas(config: KerasConfig) -> list[LambdaLayer]:
    """Every Lambda layer of `config`, recognised or not."""
    return [_inspect_lambda(layer) for layer in model_layers(config) if layer.get("class_name") == "Lambda"]


def custom_layers(config: KerasConfig) -> list[tuple[str, str]]:
    """(layer name, class name) of each layer whose class is neither a Keras layer nor ours."""
    found = []
    for layer in model_layers(config):
        class_name = str(layer.get("class_name", ""))
        if class_name != "Lambda" and class_name not in BUILTIN_LAYERS | OUR_LAYERS:
            found.append((_layer_name(layer), class_name))
    return found


def check_stored_code(path: Path, config: KerasConfig, trusted: bool) -> list[LambdaLayer]:
    """The model's Lambda layers; InputError for stored code that is not recognised (unless trusted)."""
    lambdas = inspect_lambdas(config)
    for item in lambdas:
        if item.expression is not None:
            continue
        if not trusted:
            uses = f"; names in its code: {', '.join(item.references)}" if item.references else ""
            raise InputError(
                f"{path}: Lambda layer {item.name!r} holds Python code that stquant does not "
                f"recognise ({item.reason}{uses}); {TRUST_HINT}"
            )
        if item.written_by and item.written_by != RUNNING_LAYOUT:
            raise InputError(
                f"{path}: Lambda layer {item.name!r} holds code written by Python {item.written_by}, "
                f"which this Python {_THIS_PYTHON} cannot run, and stquant does not recognise it "
                f"({item.reason})"
            )
    unknown = custom_layers(config)
    if unknown and not trusted:
        name, class_name = unknown[0]
        raise InputError(
            f"{path}: layer {name!r} is of class {class_name!r}, which is not a Keras layer: loading "
            f"it means running code found by that name; {TRUST_HINT}"
        )
    return lambdas


def rewrite_config(config: KerasConfig) -> KerasConfig | None:
    """A copy of `config` with each recognised Lambda replaced by a TensorExpression; None if there is none."""
    rewritten = copy.deepcopy(config)
    count = 0
    for layer in model_layers(rewritten):
        if layer.get("class_name") != "Lambda":
            continue
        expression = _inspect_lambda(layer).expression
        if expression is None:
            continue
        layer_config = {k: v for k, v in layer["config"].items() if k not in _LAMBDA_ONLY_KEYS}
        layer.update(class_name=REGISTERED_NAME, config={**layer_config, "expression": expression})
        if "module" in layer:  # Keras 3 format: the registered name finds the class
            layer.update(module=None, class_name=OUR_LAYER, registered_name=REGISTERED_NAME)
        count += 1
    return rewritten if count else None


def _inspect_lambda(layer: KerasConfig) -> LambdaLayer:
    config = layer.get("config") or {}
    item = LambdaLayer(_layer_name(layer))
    code_b64, defaults, closure, named = _function_parts(config)
    if named is not None:
        item.reason, item.references = f"calls the named function {named!r}", [str(named)]
        return item
    try:
        candidates = read_code_candidates(base64.b64decode(code_b64 or "", validate=False))
    except (binascii.Error, ValueError):
        candidates = []
    if not candidates:
        item.reason = "its stored code is not a Python 3.7-3.12 code object"
        return item
    code = candidates[0]
    item.written_by = " or ".join(c.layout for c in candidates)
    item.references = code.referenced_names()
    if closure:
        item.reason = "it uses variables of its enclosing function"
        return item
    try:
        item.expression = recognise(code, _bound_values(code.argnames, defaults, config.get("arguments")))
    except NotRecognised as error:
        item.reason = str(error)
    return item


def _function_parts(config: KerasConfig) -> tuple[str | None, Any, Any, str | None]:
    """(base64 code, defaults, closure, named function) of a Lambda config, Keras 2 or Keras 3."""
    function = config.get("function")
    if isinstance(function, dict):  # Keras 3: {"class_name": "__lambda__", "config": {"code": ...}}
        if function.get("class_name") == "__lambda__":
            inner = function.get("config") or {}
            return inner.get("code"), inner.get("defaults"), inner.get("closure"), None
        return None, None, None, str(function.get("config") or function.get("class_name"))
    if config.get("function_type", "lambda") != "lambda":
        return None, None, None, str(function)
    if isinstance(function, (list, tuple)):
        parts = [*function, None, None, None]
        return parts[0], parts[1], parts[2], None
    return function, None, None, None


def _bound_values(argnames: tuple[str, ...], defaults: Any, arguments: Any) -> dict[str, Any]:
    """Values (numbers, strings) of the parameters after the input: stored defaults, then the layer's `arguments`."""
    bound: dict[str, Any] = {}
    if isinstance(defaults, (list, tuple)) and defaults:
        bound.update(zip(argnames[-len(defaults) :], defaults))
    if isinstance(arguments, dict):
        bound.update(arguments)
    return {k: v for k, v in bound.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _layer_name(layer: KerasConfig) -> str:
    return str(layer.get("name") or (layer.get("config") or {}).get("name") or "?")
