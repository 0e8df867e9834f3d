"""Pytest plugin: the objects that stay alive move to the garbage collector's permanent generation.

Once a worker has imported TensorFlow, Keras and ONNX Runtime, every full collection walks their hundreds of
thousands of objects, and the conversions of each test trigger many. So after a test that imported many modules, and
between two files (the first file's module fixtures torn down, nothing of a test alive), the garbage is collected and
what is left is frozen (`gc.freeze`): later collections walk only what later tests create. A freeze inside a file may
hold that file's module fixtures: the next file boundary unfreezes them first, so that they can be collected.
"""

import gc
import sys
from collections.abc import Generator

import pytest

MANY_MODULES = 500  # modules imported since the last freeze that make a freeze worth its collection


class _Frozen:
    modules = 0  # len(sys.modules) at the last freeze
    inside_a_file = False  # the last freeze may hold module fixtures


def _freeze(inside_a_file: bool) -> None:
    if _Frozen.inside_a_file and not inside_a_file:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    _Frozen.modules, _Frozen.inside_a_file = len(sys.modules), inside_a_file


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what the collection imported (TensorFlow, ONNX Runtime, Textual, the test modules) before any test."""
    _freeze(inside_a_file=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, None]:
    """After a test's teardown: freeze at the end of a file (module fixtures gone), or where the test imported many
    modules."""
    yield
    if nextitem is not None and nextitem.path != item.path:
        _freeze(inside_a_file=False)
    elif len(sys.modules) - _Frozen.modules >= MANY_MODULES:
        _freeze(inside_a_file=True)
