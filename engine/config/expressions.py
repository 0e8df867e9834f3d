"""A tiny safe arithmetic evaluator for numeric config strings such as `1/127.5` or `(128, 128, 3)`.

The reference tool runs Python `eval()` on every config string; we only accept numbers, + - * / // % **,
unary signs, parentheses and tuples/lists of those. Anything else is rejected, never executed. The work
is bounded: at most MAX_LENGTH characters and MAX_DEPTH levels of nesting, and every intermediate value
must be a finite real number of at most MAX_DIGITS digits (checked before a power is computed), so no
expression can overflow, hang or exhaust memory.
"""

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

Number = int | float
Value = Number | tuple[Any, ...]  # a number, or a (nested) tuple of them

MAX_LENGTH = 200
MAX_DEPTH = 20
MAX_DIGITS = 100
_MAX_MAGNITUDE = 10.0**MAX_DIGITS

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number | complex]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class ExpressionError(ValueError):
    """The text is not a plain, bounded arithmetic expression."""


def evaluate(text: str) -> Value:
    """Return the value of an arithmetic expression; raise ExpressionError for anything else."""
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression too long ({len(text)} characters, at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # ValueError: NUL bytes
        raise ExpressionError(f"not a number or arithmetic expression: {_show(text)}") from exc
    return _eval(tree.body, text, 0)


def _show(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _eval(node: ast.AST, text: str, depth: int) -> Value:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression nested too deeply (more than {MAX_DEPTH} levels): {_show(text)}")
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return _bounded(node.value, text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, text, depth + 1), _eval(node.right, text, depth + 1)
        if isinstance(left, tuple) or isinstance(right, tuple):
            raise ExpressionError(f"arithmetic on a tuple in {_show(text)}")
        if isinstance(node.op, ast.Pow):
            _check_power(left, right, text)
        try:
            return _bounded(_BINARY[type(node.op)](left, right), text)
        except ZeroDivisionError as exc:
            raise ExpressionError(f"division by zero in {_show(text)}") from exc
        except OverflowError as exc:
            raise ExpressionError(f"number too large in {_show(text)}") from exc
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _eval(node.operand, text, depth + 1)
        if isinstance(operand, tuple):
            raise ExpressionError(f"arithmetic on a tuple in {_show(text)}")
        return _UNARY[type(node.op)](operand)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(element, text, depth + 1) for element in node.elts)
    raise ExpressionError(f"not a number or arithmetic expression (only numbers and + - * / ** allowed): {_show(text)}")


def _check_power(base: Number, exponent: Number, text: str) -> None:
    """Refuse a power whose result would have more than MAX_DIGITS digits, before computing it."""
    if base in (0, 1, -1) or exponent <= 0:
        return
    if exponent * math.log10(abs(base)) > MAX_DIGITS:
        raise ExpressionError(f"number too large in {_show(text)} (more than {MAX_DIGITS} digits)")


def _bounded(value: Number | complex, text: str) -> Number:
    """The value if it is a finite real number of at most MAX_DIGITS digits."""
    if isinstance(value, complex):
        raise ExpressionError(f"not a real number: {_show(text)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"not a finite number: {_show(text)}")
    if abs(value) >= _MAX_MAGNITUDE:
        raise ExpressionError(f"number too large in {_show(text)} (more than {MAX_DIGITS} digits)")
    return value
