"""Calls of a native function that releases the GIL (an ONNX Runtime session's `run`), several at once in threads.

Independent calls each on one core scale where one call split across the cores does not: an intra-op thread pool
meets at a barrier after every op, so on a busy machine each op waits for its slowest thread.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def usable_cores() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def spare_cores() -> int:
    """The cores left once one is kept for the main thread (at least one): for work done beside it, e.g. while it
    imports TensorFlow, so that the two do not take turns on one core."""
    return max(1, usable_cores() - 1)


def split_cores(calls: int) -> tuple[int, int]:
    """(calls at once, threads per call) for at most `calls` calls at once on the cores this process may use:
    one call per core up to `calls`, the cores shared out between them."""
    cores = usable_cores()
    at_once = max(1, min(calls, cores))
    return at_once, max(1, cores // at_once)


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], threads: int) -> Iterator[Result]:
    """`function(item)` of each item, in order, `threads` calls at once in worker threads. Items are taken from
    `items` in the caller's thread, one call ahead of the running ones; when the caller stops early (an error,
    an interrupt) the calls not started are cancelled and the running ones waited for."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future[Result]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
