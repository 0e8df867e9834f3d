"""What a Lambda computes, read from its instructions: a small expression tree, or None.

The instructions are followed on a symbolic stack (nothing is executed): the layer's input becomes
`["input"]` (`["input", i]` for `inputs[i]`), numbers stay numbers, `+ - * /` and unary minus become
`["add", a, b]`, ... and a call to a function of the table below becomes `[operation, *arguments]`
(positional and keyword arguments bound to the function's parameter names). Anything else (another
function, a global variable, a closure, attribute access on a tensor) stops recognition.

The table holds only what real model files use: ST's model zoo (`st_efficientnet_lc_v1`:
`tf.clip_by_value(x, clip_value_min=-4.0, clip_value_max=4.0)` before a sigmoid), and the
common hand-written activations (`tf.nn.relu6(x)`, hard-sigmoid `tf.nn.relu6(x + 3) / 6`,
hard-swish `x * tf.nn.relu6(x + 3) / 6`, scale-and-shift `x / 127.5 - 1`). Global names resolve as
tf_keras' own Lambda loader resolves them: `tf` is TensorFlow; `K`/`backend` the Keras backend;
`ops`/`keras.ops` Keras 3's operations. `evaluate` computes a tree with the framework's functions of
the same names, in the same order, so the graph is the one the Lambda would have built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from engine.models.keras_lambda.bytecode import OPCODES, CodeObject

# A recognised computation: ["operation", argument, ...], each argument a number, a list of numbers, ["input", i]
# or a nested expression (JSON-able: it is stored in the rewritten model config).
Expression = list[Any]

_TF = ("tf", "tensorflow")
_BACKEND = ("K", "backend", "tf.keras.backend", "keras.backend", "tensorflow.keras.backend")
_KERAS3_OPS = ("ops", "keras.ops")

# function name (after its module prefix) -> (operation, parameter names)
TF_FUNCTIONS = {
    "clip_by_value": ("clip", ("t", "clip_value_min", "clip_value_max")),
    "nn.relu6": ("relu6", ("features",)),
    "nn.relu": ("relu", ("features",)),
    "nn.sigmoid": ("sigmoid", ("x",)),
    "sigmoid": ("sigmoid", ("x",)),
    "math.sigmoid": ("sigmoid", ("x",)),
    "minimum": ("minimum", ("x", "y")),
    "math.minimum": ("minimum", ("x", "y")),
    "maximum": ("maximum", ("x", "y")),
    "math.maximum": ("maximum", ("x", "y")),
    "multiply": ("mul", ("x", "y")),
    "math.multiply": ("mul", ("x", "y")),
    "add": ("add", ("x", "y")),
    "math.add": ("add", ("x", "y")),
}
BACKEND_FUNCTIONS = {
    "clip": ("clip", ("x", "min_value", "max_value")),
    "sigmoid": ("sigmoid", ("x",)),
    "minimum": ("minimum", ("x", "y")),
    "maximum": ("maximum", ("x", "y")),
}
KERAS3_OPS_FUNCTIONS = {
    "clip": ("clip", ("x", "x_min", "x_max")),
    "relu6": ("relu6", ("x",)),
    "relu": ("relu", ("x",)),
    "sigmoid": ("sigmoid", ("x",)),
    "minimum": ("minimum", ("x1", "x2")),
    "maximum": ("maximum", ("x1", "x2")),
}
_BINARY = {"BINARY_ADD": "add", "BINARY_SUBTRACT": "sub", "BINARY_MULTIPLY": "mul", "BINARY_TRUE_DIVIDE": "div"}
_BINARY_OP = {0: "add", 5: "mul", 10: "sub", 11: "div"}  # BINARY_OP argument (3.11+): NB_ADD, ...
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


class NotRecognised(Exception):
    """The code does something outside the table (the message says what)."""


class _Null:
    """The NULL that 3.11+ pushes below a callable."""


class _Name(tuple[str, ...]):
    """A dotted global name being built: ('tf', 'nn', 'relu6')."""


def recognise(code: CodeObject, bound: dict[str, Any]) -> Expression:
    """The expression `code` computes (one candidate layout, all its opcode tables), or NotRecognised.

    `bound` maps parameter names other than the first (the layer input) to constant values.
    """
    if code.freevars:
        raise NotRecognised(f"uses variables of its enclosing function ({', '.join(code.freevars)})")
    results, errors = [], []
    for version, opcodes, null_bit, method_bit in OPCODES[code.layout]:
        try:
            results.append(_evaluate(code, opcodes, (null_bit, method_bit), bound))
        except NotRecognised as error:
            errors.append(str(error))
        except (KeyError, IndexError):
            errors.append(f"uses instructions outside pure tensor expressions (read as Python {version})")
    distinct = [r for i, r in enumerate(results) if r not in results[:i]]
    if len(distinct) == 1:
        return distinct[0]
    raise NotRecognised("reads differently as Python 3.11 and 3.12" if distinct else errors[0])


def evaluate(expression: Any, inputs: Any, functions: dict[str, Any]) -> Any:
    """Compute `expression` on `inputs` with `functions` (operation name -> the framework's function)."""
    if not isinstance(expression, list):
        return expression
    op, *args = expression
    if op == "input":
        return inputs[args[0]] if args else inputs
    return functions[op](*(evaluate(a, inputs, functions) for a in args))


def describe(expression: Any) -> str:
    """A readable form: `clip(x, -4.0, 4.0)`, `(x * relu6((x + 3))) / 6`."""
    if not isinstance(expression, list):
        return repr(expression)
    op, *args = expression
    if op == "input":
        return f"x[{args[0]}]" if args else "x"
    if op in _SYMBOLS:
        return f"({describe(args[0])} {_SYMBOLS[op]} {describe(args[1])})"
    if op == "neg":
        return f"-{describe(args[0])}"
    return f"{op}({', '.join(describe(a) for a in args)})"


def _evaluate(code: CodeObject, opcodes: dict[int, str], bits: tuple[bool, bool], bound: dict[str, Any]) -> Expression:
    if not code.argnames:
        raise NotRecognised("takes no argument")
    values = {name: bound[name] for name in code.argnames[1:] if name in bound}
    if len(values) != len(code.argnames) - 1:
        raise NotRecognised("has parameters without a stored value")
    values[code.argnames[0]] = ["input"]
    run = _SymbolicRun(code, values, *bits)
    instructions = code.instructions(opcodes)
    for name, arg in instructions[:-1]:
        run.step(name, arg)
    if not instructions or instructions[-1][0] != "RETURN_VALUE" or len(run.stack) != 1:
        raise NotRecognised("is not a single expression")
    return _tensor_result(run.stack.pop())


class _SymbolicRun:
    """A stack of symbolic values that instructions push, pop and combine into an expression tree."""

    def __init__(self, code: CodeObject, values: dict[str, Any], null_bit: bool, method_bit: bool) -> None:
        self.code, self.values, self.null_bit, self.method_bit = code, values, null_bit, method_bit
        self.stack: list[Any] = []
        self.kwnames: tuple[str, ...] = ()

    def step(self, name: str, arg: int) -> None:
        handler = self._HANDLERS.get(name) or (_SymbolicRun._binary if name in _BINARY or name == "BINARY_OP" else None)
        if handler is None:
            raise NotRecognised(f"uses {name}")
        handler(self, name, arg)

    def _skip(self, name: str, arg: int) -> None:
        """RESUME, NOP, PRECALL: nothing to follow."""

    def _load_fast(self, name: str, arg: int) -> None:
        self.stack.append(self.values[self.code.argnames[arg]])

    def _load_const(self, name: str, arg: int) -> None:
        self.stack.append(_constant(self.code.consts[arg]))

    def _push_null(self, name: str, arg: int) -> None:
        self.stack.append(_Null())

    def _load_global(self, name: str, arg: int) -> None:
        if self.null_bit:  # 3.11+: the low bit asks for a NULL below the global
            if arg & 1:
                self.stack.append(_Null())
            arg >>= 1
        self.stack.append(_Name((self.code.names[arg],)))

    def _load_attr(self, name: str, arg: int) -> None:
        is_method = name == "LOAD_METHOD" or (self.method_bit and arg & 1)
        attr = self.code.names[arg >> 1 if self.method_bit else arg]
        owner = self.stack.pop()
        if not isinstance(owner, _Name):
            raise NotRecognised(f"reads attribute {attr!r} of a tensor or a value")
        if is_method:
            self.stack.append(_Null())
        self.stack.append(_Name((*owner, attr)))

    def _kw_names(self, name: str, arg: int) -> None:
        self.kwnames = self.code.consts[arg]

    def _call(self, name: str, arg: int) -> None:
        if name == "CALL_FUNCTION_KW":
            self.kwnames = self.stack.pop()
        args = [self.stack.pop() for _ in range(arg)][::-1]
        function = self.stack.pop()
        if name in ("CALL_METHOD", "CALL") and not isinstance(self.stack.pop(), _Null):
            raise NotRecognised("calls a method of a value")
        self.stack.append(_call(function, args, self.kwnames))
        self.kwnames = ()

    def _binary(self, name: str, arg: int) -> None:
        right, left = self.stack.pop(), self.stack.pop()
        op = _BINARY.get(name) or _BINARY_OP.get(arg)
        if op is None:
            raise NotRecognised("uses an operator other than + - * /")
        if not all(_is_number(v) or isinstance(v, list) for v in (left, right)):
            raise NotRecognised("computes with a value that is neither a tensor nor a number")
        self.stack.append([op, left, right])

    def _negative(self, name: str, arg: int) -> None:
        value = self.stack.pop()
        if not (_is_number(value) or isinstance(value, list)):
            raise NotRecognised("negates a value that is neither a tensor nor a number")
        self.stack.append(-value if _is_number(value) else ["neg", value])

    def _subscript(self, name: str, arg: int) -> None:
        index, owner = self.stack.pop(), self.stack.pop()
        if owner != ["input"] or not isinstance(index, int) or isinstance(index, bool):
            raise NotRecognised("indexes something other than its list of inputs")
        self.stack.append(["input", index])

    _HANDLERS: ClassVar[dict[str, Callable[[_SymbolicRun, str, int], None]]] = {
        "RESUME": _skip,
        "NOP": _skip,
        "PRECALL": _skip,
        "LOAD_FAST": _load_fast,
        "LOAD_FAST_CHECK": _load_fast,
        "LOAD_CONST": _load_const,
        "PUSH_NULL": _push_null,
        "LOAD_GLOBAL": _load_global,
        "LOAD_ATTR": _load_attr,
        "LOAD_METHOD": _load_attr,
        "KW_NAMES": _kw_names,
        "CALL_FUNCTION": _call,
        "CALL_FUNCTION_KW": _call,
        "CALL_METHOD": _call,
        "CALL": _call,
        "UNARY_NEGATIVE": _negative,
        "BINARY_SUBSCR": _subscript,
    }


def _constant(value: Any) -> Any:
    if (
        isinstance(value, str)
        or _is_number(value)
        or (isinstance(value, tuple) and all(isinstance(v, str) or _is_number(v) for v in value))
    ):
        return value  # a number; or a name, keyword names, a shape: which only a call can reject, naming it
    raise NotRecognised(f"uses a constant of type {type(value).__name__}")


def _call(function: Any, args: list[Any], kwnames: tuple[str, ...]) -> Expression:
    if not isinstance(function, _Name):
        raise NotRecognised("calls something that is not a named function")
    dotted = ".".join(function)
    operation, params = _lookup(dotted)
    positional, keywords = args[: len(args) - len(kwnames)], dict(zip(kwnames, args[len(args) - len(kwnames) :]))
    if len(positional) > len(params) or set(keywords) - set(params[len(positional) :]):
        raise NotRecognised(f"calls {dotted} with arguments it does not take")
    bound = dict(zip(params, positional)) | keywords
    if not all(_is_number(v) or isinstance(v, list) for v in bound.values()):
        raise NotRecognised(f"calls {dotted} with an argument that is neither a tensor nor a number")
    if set(bound) != set(params):
        raise NotRecognised(f"calls {dotted} without all of {', '.join(params)}")
    return [operation, *(bound[p] for p in params)]


def _lookup(dotted: str) -> tuple[str, tuple[str, ...]]:
    for prefixes, table in ((_BACKEND, BACKEND_FUNCTIONS), (_KERAS3_OPS, KERAS3_OPS_FUNCTIONS), (_TF, TF_FUNCTIONS)):
        for prefix in prefixes:
            if dotted.startswith(prefix + ".") and dotted[len(prefix) + 1 :] in table:
                return table[dotted[len(prefix) + 1 :]]
    raise NotRecognised(f"calls {dotted}, which is not a known tensor function")


def _tensor_result(value: Any) -> Expression:
    if not isinstance(value, list) or not _uses_input(value):
        raise NotRecognised("does not compute a tensor from its input")
    return value


def _uses_input(node: Any) -> bool:
    return isinstance(node, list) and (node[0] == "input" or any(_uses_input(a) for a in node[1:]))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
