"""A tiny safe arithmetic evaluator for numeric config strings such as `1/127.5` or `(128, 128, 3)`.

The reference tool runs Python `eval()` on every config string; we only accept numbers, + - * / // % **,
unary signs, parentheses and tuples/lists of those. Anything else is rejected, never executed.
"""

import ast
import operator

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class ExpressionError(ValueError):
    """The text is not a plain arithmetic expression."""


def evaluate(text: str) -> float | int | tuple:
    """Return the value of an arithmetic expression; raise ExpressionError for anything else."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a number or arithmetic expression: {text!r}") from exc
    return _eval(tree.body, text)


def _eval(node: ast.AST, text: str):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, text), _eval(node.right, text)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExpressionError(f"exponent too large in {text!r}")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise ExpressionError(f"division by zero in {text!r}") from exc
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, text))
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(element, text) for element in node.elts)
    raise ExpressionError(f"not a number or arithmetic expression (only numbers and + - * / ** allowed): {text!r}")
