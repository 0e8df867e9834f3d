"""Read a marshalled CPython code object (3.7-3.12) as data, never as code.

Keras stores a Lambda's function as `base64(marshal.dumps(func.__code__))`, without the Python
version that wrote it; `marshal.loads` only reads its own version's layout (Python 3.11 rejects a
3.8 lambda: "bad marshal data"), and loading it would lead to running it. This reader decodes the
marshal format itself (strings, numbers, tuples, code) and tries the three code-object layouts:
3.7, 3.8-3.10 and 3.11+; a layout that reads the bytes exactly, end to end, is a candidate.
The instructions are then decoded with that version's opcode numbers (only the few opcodes a
pure tensor expression needs; anything else stops recognition).

Why not `xdis` (the maintained cross-version library): it is GPL-licensed, which the project's
dependencies are not, and it brings `click` and `six`; what is needed here is ~150 lines.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

LAYOUTS = ("3.7", "3.8-3.10", "3.11-3.12")
RUNNING_LAYOUT = "3.11-3.12"  # this project's Python (3.11) writes and reads the 3.11 layout

_OPS_37_310 = {
    9: "NOP",
    11: "UNARY_NEGATIVE",
    20: "BINARY_MULTIPLY",
    23: "BINARY_ADD",
    24: "BINARY_SUBTRACT",
    25: "BINARY_SUBSCR",
    27: "BINARY_TRUE_DIVIDE",
    83: "RETURN_VALUE",
    100: "LOAD_CONST",
    102: "BUILD_TUPLE",
    103: "BUILD_LIST",
    106: "LOAD_ATTR",
    116: "LOAD_GLOBAL",
    124: "LOAD_FAST",
    131: "CALL_FUNCTION",
    141: "CALL_FUNCTION_KW",
    144: "EXTENDED_ARG",
    160: "LOAD_METHOD",
    161: "CALL_METHOD",
}
_OPS_311_312 = {
    0: "CACHE",
    2: "PUSH_NULL",
    9: "NOP",
    11: "UNARY_NEGATIVE",
    25: "BINARY_SUBSCR",
    83: "RETURN_VALUE",
    100: "LOAD_CONST",
    102: "BUILD_TUPLE",
    103: "BUILD_LIST",
    106: "LOAD_ATTR",
    116: "LOAD_GLOBAL",
    122: "BINARY_OP",
    124: "LOAD_FAST",
    144: "EXTENDED_ARG",
    151: "RESUME",
    171: "CALL",
    172: "KW_NAMES",
}
# Opcode tables per layout: (version, opcodes, LOAD_GLOBAL carries a NULL bit, LOAD_ATTR a method bit)
OPCODES = {
    "3.7": [("3.7", _OPS_37_310, False, False)],
    "3.8-3.10": [("3.8-3.10", _OPS_37_310, False, False)],
    "3.11-3.12": [
        ("3.11", {**_OPS_311_312, 160: "LOAD_METHOD", 166: "PRECALL"}, True, False),
        ("3.12", {**_OPS_311_312, 121: "RETURN_CONST", 127: "LOAD_FAST_CHECK"}, True, True),
    ],
}


class MarshalError(ValueError):
    """The bytes are not a marshalled code object of the given layout."""


@dataclass(frozen=True)
class CodeObject:
    """The parts of a code object that say what it computes."""

    layout: str
    argnames: tuple[str, ...]
    code: bytes
    consts: tuple[Any, ...]  # marshal values: numbers, strings, tuples, nested CodeObjects
    names: tuple[str, ...]
    freevars: tuple[str, ...]

    def instructions(self, opcodes: dict[int, str]) -> list[tuple[str, int]]:
        """(opname, argument) pairs; EXTENDED_ARG folded in, CACHE entries dropped; KeyError on unknown opcodes."""
        result, extended = [], 0
        for i in range(0, len(self.code) - 1, 2):
            name, arg = opcodes[self.code[i]], self.code[i + 1] | extended
            extended = arg << 8 if name == "EXTENDED_ARG" else 0
            if name not in ("EXTENDED_ARG", "CACHE"):
                result.append((name, arg))
        return result

    def referenced_names(self) -> list[str]:
        """Global and attribute names the code uses (including nested code objects)."""
        names = list(self.names)
        for const in self.consts:
            if isinstance(const, CodeObject):
                names += [n for n in const.referenced_names() if n not in names]
        return names


def read_code_candidates(data: bytes) -> list[CodeObject]:
    """Every layout that reads `data` as one code object, exactly to its end."""
    found = []
    for layout in LAYOUTS:
        try:
            reader = _Reader(data, layout)
            code = reader.read()
        except (MarshalError, struct.error, IndexError, UnicodeDecodeError, TypeError, ValueError):
            continue
        if isinstance(code, CodeObject) and reader.pos == len(data):
            found.append(code)
    return found


class _Reader:
    def __init__(self, data: bytes, layout: str) -> None:
        self.data, self.layout, self.pos = data, layout, 0
        self.refs: list[Any] = []

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MarshalError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _int(self) -> int:
        value: int = struct.unpack("<i", self._take(4))[0]
        return value

    def read(self) -> Any:
        """The next marshal value: its type is what the file holds (checked by the caller)."""
        byte = self._take(1)[0]
        kind, flag = chr(byte & 0x7F), byte & 0x80
        if kind == "r":
            return self.refs[self._int()]
        simple = {"N": None, "T": True, "F": False, ".": Ellipsis}
        if kind in simple:
            return simple[kind]
        slot = len(self.refs)
        if flag:
            self.refs.append(None)  # reserved before the children, as CPython numbers references
        value = self._value(kind)
        if flag:
            self.refs[slot] = value
        return value

    def _value(self, kind: str) -> Any:
        if kind == "i":
            return self._int()
        if kind == "l":
            count = self._int()
            digits = struct.unpack(f"<{abs(count)}H", self._take(2 * abs(count)))
            value = sum(d << (15 * i) for i, d in enumerate(digits))
            return -value if count < 0 else value
        if kind == "g":
            return struct.unpack("<d", self._take(8))[0]
        if kind == "y":
            return complex(*struct.unpack("<dd", self._take(16)))
        if kind in "fx":
            raise MarshalError("text floats are marshal version 1")
        if kind == "s":
            return self._take(self._int())
        if kind in "tuaA":
            return self._take(self._int()).decode("utf-8" if kind in "tu" else "latin-1")
        if kind in "zZ":
            return self._take(self._take(1)[0]).decode("latin-1")
        if kind in "([<>":
            items = tuple(self.read() for _ in range(self._int()))
            return list(items) if kind == "[" else items
        if kind == ")":
            return tuple(self.read() for _ in range(self._take(1)[0]))
        if kind == "c":
            return self._code()
        raise MarshalError(f"unsupported marshal type {kind!r}")

    def _code(self) -> CodeObject:
        if self.layout == "3.7":
            argcount, _, _, _, _ = (self._int() for _ in range(5))
        elif self.layout == "3.8-3.10":
            argcount, _, _, _, _, _ = (self._int() for _ in range(6))
        else:
            argcount, _, _, _, _ = (self._int() for _ in range(5))
        code, consts, names = self.read(), self.read(), self.read()
        if self.layout == "3.11-3.12":
            localsplus, kinds = self.read(), self.read()
            _filename, _name, _qualname = self.read(), self.read(), self.read()
            self._int()
            self.read(), self.read()  # line table, exception table
            if not isinstance(kinds, bytes) or len(kinds) != len(localsplus):
                raise MarshalError("locals and their kinds differ")
            argnames, freevars = localsplus[:argcount], tuple(n for n, k in zip(localsplus, kinds) if k & 0x80)
        else:
            varnames, freevars, _cellvars = self.read(), self.read(), self.read()
            _filename, _name = self.read(), self.read()
            self._int()
            self.read()  # line number table
            argnames = varnames[:argcount]
        if not (isinstance(code, bytes) and isinstance(consts, tuple) and isinstance(names, tuple)):
            raise MarshalError("not a code object")
        return CodeObject(self.layout, tuple(argnames), code, consts, tuple(names), tuple(freevars))
