"""engine.common.threads: calls at once in threads, results in order, the rest cancelled on an error."""

import threading
import time

import pytest

from engine.common.threads import ordered_map, spare_cores, split_cores


def test_results_come_in_order_and_items_are_taken_one_call_ahead():
    taken, running, most = [], [], [0]
    lock = threading.Lock()

    def items():
        for i in range(12):
            taken.append(i)
            yield i

    def slow_first(i):
        with lock:
            running.append(i)
            most[0] = max(most[0], len(running))
        time.sleep(0.02 * (12 - i) / 12)  # later items finish first
        with lock:
            running.remove(i)
        return i * i

    results = []
    for value in ordered_map(slow_first, items(), 3):
        results.append(value)
        assert len(taken) <= len(results) + 3 + 1  # 3 running, 1 queued, at most
    assert results == [i * i for i in range(12)]
    assert most[0] == 3


def test_an_error_is_raised_and_the_calls_not_started_are_cancelled():
    started = []

    def fail_on_two(i):
        started.append(i)
        if i == 2:
            raise ValueError("item 2")
        time.sleep(0.01)
        return i

    with pytest.raises(ValueError, match="item 2"):
        list(ordered_map(fail_on_two, range(1000), 2))
    assert len(started) <= 6


@pytest.mark.parametrize(
    ("cores", "calls", "split"), [(8, 2, (2, 4)), (2, 2, (2, 1)), (1, 2, (1, 1)), (8, 1, (1, 8)), (3, 2, (2, 1))]
)
def test_split_cores_shares_the_cores_out(monkeypatch, cores, calls, split):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert split_cores(calls) == split


@pytest.mark.parametrize(("cores", "spare"), [(1, 1), (2, 1), (3, 2), (8, 7)])
def test_spare_cores_keep_one_for_the_main_thread(monkeypatch, cores, spare):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert spare_cores() == spare
