"""lean's worker threads: ``run_split``'s pool, whose idle workers spin a moment before they sleep.

A kernel call that splits its images over two threads must wake the other thread, and a sleeping thread wakes
slowly: ~50 microseconds a round trip on this project's 2-core virtual machine (a ``threading.Event`` ping, a
``ThreadPoolExecutor`` task), on ~135 calls a ResNet-20 training step and on every small LeNet-5 kernel. Here a
worker that finished its part keeps polling for the next one for ``SPIN_SECONDS`` before it blocks, as OpenMP
runtimes do, so back-to-back kernel calls find it awake (a few microseconds).

The poll runs in a Numba ``nogil`` function (``_wait_for``) on an int64 array of sequence numbers read with
atomic loads, so a spinning worker never holds the GIL, and the caller, which runs one part itself, waits for
the others the same way. A worker marks its part done from inside that function, after its result is stored
and with the GIL already released, so the caller never waits for the GIL to come back. Exceptions in a worker's
part are raised in the caller (after every part has finished). Only one thread dispatches at a time; a second
caller (a program's own threads) runs its whole range itself. The protocol between posting a part and a
sleeping worker relies on the GIL ordering them (a free-threaded Python would need a fence there). The cycle
counter bounds the polling on x86-64; elsewhere a poll count does.
"""

import os
import platform
import threading
import time

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

SPIN_SECONDS = 0.002  # how long an idle worker polls before it sleeps (and the caller before it yields)

# flags[2 w]: the last part posted to worker w; flags[2 w + 1]: the last part it finished
_POSTED, _DONE = 0, 1


def _pointer(context, builder, signature, args):
    array = context.make_array(signature.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, signature.args[0], array, [args[1]])


@intrinsic
def _atomic_load(typingctx, flags, index):
    """``flags[index]`` (int64) read with acquire ordering: never hoisted out of a polling loop."""
    def codegen(context, builder, signature, args):
        return builder.load_atomic(_pointer(context, builder, signature, args), "acquire", 8)
    return types.int64(flags, index), codegen


@intrinsic
def _atomic_store(typingctx, flags, index, value):
    """``flags[index] = value`` (int64) with release ordering: what was written before is seen with it."""
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[2], _pointer(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()
    return types.void(flags, index, value), codegen


@intrinsic
def _cycle_counter(typingctx):
    """The CPU's cycle counter (``llvm.readcyclecounter``: ``rdtsc`` on x86-64). Called only where
    ``_COUNTER`` says so: on ARM64 it reads a register Linux keeps from user programs (SIGILL)."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@numba.njit(nogil=True, cache=True)
def _post(flags, index, value):
    _atomic_store(flags, index, value)


@numba.njit(nogil=True, cache=True)
def _wait_for(flags, index, value, mark_index, mark_value, cycles, polls):
    """Store ``mark_value`` at ``mark_index`` (if >= 0), then poll until ``flags[index] >= value``: True, or
    False after ``cycles`` cycles of the counter (``cycles`` > 0), else after ``polls`` polls."""
    if mark_index >= 0:
        _atomic_store(flags, mark_index, mark_value)
    start = _cycle_counter() if cycles > 0 else 0
    for step in range(1 << 62):
        if _atomic_load(flags, index) >= value:
            return True
        if step % 64 == 63:
            if (_cycle_counter() - start > cycles) if cycles > 0 else step > polls:
                return False
    return False


@numba.njit(nogil=True, cache=True)
def _cycles():
    return _cycle_counter()


_COUNTER = platform.machine().lower() in ("x86_64", "amd64")  # where reading the counter is allowed


def _cycles_per_second():
    """The cycle counter's rate, measured once; 0 where it is not read (then waits count polls)."""
    if not _COUNTER:
        return 0.0
    _cycles()
    c0, t0 = _cycles(), time.perf_counter()
    while time.perf_counter() - t0 < 0.005:
        pass
    c1, t1 = _cycles(), time.perf_counter()
    return max(0.0, (c1 - c0) / (t1 - t0))


class SpinPool:
    """``workers`` threads that run parts of a ``run_split`` call; the caller runs the first part."""

    def __init__(self, workers: int):
        self.pid = os.getpid()  # a forked child has none of these threads: run_split makes it a new pool
        self.workers = int(workers)
        self.flags = np.zeros(2 * self.workers, np.int64)
        self.sequence = 0
        self.parts = [None] * self.workers
        self.results = [None] * self.workers
        self.dispatching = threading.Lock()
        self.asleep = threading.Condition()
        self.sleeping = [False] * self.workers
        self.closed = False
        rate = _cycles_per_second()
        self.spin_cycles = int(SPIN_SECONDS * rate) if rate else 0
        self.spin_polls = 200_000
        self.threads = [threading.Thread(target=self._work, args=(w,), name=f"lean-{w + 1}", daemon=True)
                        for w in range(self.workers)]
        for thread in self.threads:
            thread.start()

    def _work(self, w):
        seen = 0
        flags = self.flags
        while True:
            if not _wait_for(flags, 2 * w + _POSTED, seen + 1, 2 * w + _DONE, seen, self.spin_cycles,
                             self.spin_polls):
                with self.asleep:
                    self.sleeping[w] = True
                    while flags[2 * w + _POSTED] <= seen and not self.closed:
                        self.asleep.wait()
                    self.sleeping[w] = False
                if self.closed:
                    return
                continue
            seen = int(flags[2 * w + _POSTED])
            if self.closed:
                return
            task, start, stop = self.parts[w]
            self.parts[w] = None
            try:
                self.results[w] = (True, task(start, stop))
            except BaseException as error:  # raised again in the caller
                self.results[w] = (False, error)

    def run(self, task, ranges):
        """``[task(a, b) for a, b in ranges]``, the first range in this thread, the others one per worker."""
        if not self.dispatching.acquire(blocking=False):  # another thread is dispatching: all parts here
            return [task(a, b) for a, b in ranges]
        try:
            if self.closed:
                return [task(a, b) for a, b in ranges]
            self.sequence += 1
            sequence = self.sequence
            others = ranges[1:]
            for w, (a, b) in enumerate(others):
                self.parts[w] = (task, a, b)
                _post(self.flags, 2 * w + _POSTED, sequence)
            if any(self.sleeping[:len(others)]):
                with self.asleep:
                    self.asleep.notify_all()
            try:
                results = [task(*ranges[0])]
            finally:  # even if this part raised: the workers' parts finish before the call returns
                outcomes = [self._collect(w, sequence) for w in range(len(others))]
            for ok, value in outcomes:
                if not ok:
                    raise value
                results.append(value)
            return results
        finally:
            self.dispatching.release()

    def _collect(self, w, sequence):
        """Wait for worker ``w`` to finish part ``sequence``: (ok, result or exception)."""
        polls = 0
        while not _wait_for(self.flags, 2 * w + _DONE, sequence, -1, 0, self.spin_cycles, self.spin_polls):
            polls += 1  # a long part: stop spinning, check on the worker now and then
            if not self.threads[w].is_alive():
                return False, RuntimeError(f"lean worker thread {w + 1} stopped")
            time.sleep(0 if polls < 4 else 0.0002)
        outcome = self.results[w]
        self.results[w] = None
        return outcome

    def close(self):
        """Stop the workers, after any call in progress (they exit at their next wake-up)."""
        with self.dispatching:
            with self.asleep:
                self.closed = True
                self.asleep.notify_all()
            self.sequence += 1
            for w in range(self.workers):
                _post(self.flags, 2 * w + _POSTED, self.sequence)
