"""run_split's worker pool (lean.kernels._workers): results in order, errors raised in the caller, callers on
several threads, a changed thread count."""

import threading

import numpy as np
import pytest

from lean.kernels import _config


@pytest.fixture
def two_threads():
    before = _config.get_threads()
    _config.set_threads(2)
    yield
    _config.set_threads(before)


def test_parts_come_back_in_range_order(two_threads):
    for n in (1, 2, 3, 10, 1001):
        parts = _config.run_split(lambda a, b: (a, b), n)
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(p[1] == q[0] for p, q in zip(parts, parts[1:], strict=False))


def test_a_workers_error_is_raised_in_the_caller_and_the_pool_keeps_working(two_threads):
    def task(a, b):
        if a > 0:
            raise KeyError("second part")
        return a

    with pytest.raises(KeyError, match="second part"):
        _config.run_split(task, 4)
    assert _config.run_split(lambda a, b: b - a, 4) == [2, 2]


def test_callers_on_several_threads_each_get_their_own_results(two_threads):
    out, errors = {}, []

    def caller(i):
        try:
            for _ in range(50):
                total = sum(_config.run_split(lambda a, b: int(np.arange(a, b).sum()) + i, 100))
                assert total == 4950 + i * len(_config.run_split(lambda a, b: 0, 100))  # i once per part
            out[i] = True
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(out) == 3


def test_a_new_thread_count_makes_a_new_pool():
    before = _config.get_threads()
    try:
        _config.set_threads(2)
        assert len(_config.run_split(lambda a, b: a, 8)) == 2
        _config.set_threads(1)
        assert len(_config.run_split(lambda a, b: a, 8)) == 1
        _config.set_threads(2)
        assert len(_config.run_split(lambda a, b: a, 8)) == 2
    finally:
        _config.set_threads(before)


def test_changing_the_thread_count_during_a_call_waits_for_it(two_threads):
    started, done = threading.Event(), []

    def slow(a, b):
        started.set()
        threading.Event().wait(0.2)
        return b - a

    def caller():
        done.append(_config.run_split(slow, 4))

    t = threading.Thread(target=caller)
    t.start()
    started.wait(5)
    _config.set_threads(1)  # closes the pool the call is using: after the call
    t.join(10)
    assert not t.is_alive() and done == [[2, 2]]


def test_when_the_callers_own_part_fails_the_workers_parts_still_finish_first(two_threads):
    finished = []

    def task(a, b):
        if a == 0:
            raise ValueError("first part")
        threading.Event().wait(0.1)
        finished.append(a)

    with pytest.raises(ValueError, match="first part"):
        _config.run_split(task, 2)
    assert finished == [1]
