"""The one place where Numba flags and threading are decided; every kernel imports from here.

Importing lean sets nothing: no environment variable, no BLAS limit, no threading layer. ``configure()`` (also
``lean.configure``), which the ``lean`` command, the ``Trainer`` and the benchmarks call, sets what lean's speed
figures were measured with; see its docstring for what a program gets without it.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# fastmath without nnan/ninf: NaN and inf must propagate so a diverging loss is seen, not hidden.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

JIT = dict(cache=True, nogil=True, fastmath=FASTMATH)
PARALLEL_JIT = dict(JIT, parallel=True)

njit = numba.njit
prange = numba.prange


# Index arithmetic in hot loops is done on unsigned integers (``U``): Numba adds a negative-index wraparound
# test to every signed index, which stopped LLVM vectorizing the im2col copy (measured 4-5x slower).
U = numba.uint64

_state = {"threads": numba.config.NUMBA_NUM_THREADS, "pool": None, "blas_limit": None, "configured": False}


def _threading_layer_launched():
    try:
        numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized."
        return False
    return True


def configure(threads: int | None = None, *, blas_threads: int | None = 1, free_memory_reuse: bool = True) -> dict:
    """Set up the process the way lean's kernels are fastest; returns what is now in effect (``threads``,
    ``blas_threads``, ``threading_layer``, ``free_memory_reuse``).

    What it sets, and why (the threading trap of PERFORMANCE.md: with defaults, two threads ran slower than one):

    - Numba's threading layer becomes ``workqueue``, whose idle workers sleep, unless the user chose one
      (``NUMBA_THREADING_LAYER``); ``OMP_WAIT_POLICY=PASSIVE`` (unless set) for an OpenMP runtime that starts
      later. Both only take effect **before** Numba launches its threading layer (its first parallel kernel):
      after that, the layer in use stays, and ``configure`` says so in ``threading_layer``.
    - BLAS (OpenBLAS, MKL) runs on ``blas_threads`` threads (1): lean calls it from its own worker threads, one
      image range each, and BLAS's idle threads would spin and fight them. This holds for the whole process
      until ``configure`` is called with another value: a host program's own ``np.dot`` runs single-threaded
      meanwhile.
    - ``threads``: how many threads lean's kernels use (``set_threads``); None keeps the current number.
    - ``free_memory_reuse``: glibc keeps freed large blocks for reuse (``keep_freed_memory``).

    Without ``configure()`` every kernel gives the same results, at Numba's and BLAS's own settings: Numba's
    default layer (TBB, OpenMP or workqueue, whichever is installed first) and BLAS on all cores, which on small
    machines can oversubscribe the cores and run slower.
    """
    if not _threading_layer_launched():
        if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
            numba.config.THREADING_LAYER = "workqueue"
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        if _state["blas_limit"] is not None:
            _state["blas_limit"].restore_original_limits()
        _state["blas_limit"] = threadpool_limits(limits=int(blas_threads), user_api="blas")
    if threads is not None:
        set_threads(threads)
    reuse = keep_freed_memory() if free_memory_reuse else False
    _state["configured"] = True
    layer = numba.threading_layer() if _threading_layer_launched() else numba.config.THREADING_LAYER
    return {"threads": _state["threads"], "blas_threads": blas_threads, "threading_layer": layer,
            "free_memory_reuse": reuse}


def ensure_configured():
    """``configure()`` with its defaults, unless the program has called ``configure`` already (its choices stay).
    The ``Trainer`` and ``lean bench`` call this."""
    if not _state["configured"]:
        configure()


def set_threads(n_threads):
    """Set how many threads lean's kernels use: its worker pool and Numba's parallel loops (at most
    ``NUMBA_NUM_THREADS``, the machine's cores by default). Launches Numba's threading layer: call ``configure``
    first if it should choose the layer."""
    n_threads = int(n_threads)
    if n_threads < 1:
        raise ValueError(f"threads must be >= 1, got {n_threads}")
    n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n_threads)
    if n_threads != _state["threads"]:
        _state["threads"] = n_threads
        pool, _state["pool"] = _state["pool"], None
        if pool is not None and pool.pid == os.getpid():  # a forked child's copy has no threads to stop
            pool.close()


def get_threads():
    """How many threads lean's kernels use."""
    return _state["threads"]


def run_split(task, n_items):
    """Run ``task(start, stop)`` over ``range(n_items)`` split into one contiguous range per thread.

    Returns the list of results in range order. Tasks must release the GIL (nogil kernels, BLAS) to overlap.
    """
    n_parts = max(1, min(_state["threads"], n_items))
    bounds = [(n_items * p) // n_parts for p in range(n_parts + 1)]
    ranges = [(bounds[p], bounds[p + 1]) for p in range(n_parts)]
    if n_parts == 1:
        return [task(*ranges[0])]
    pool = _state["pool"]
    if pool is None or pool.pid != os.getpid():
        with _POOL_LOCK:  # two threads arriving at once make one pool
            pool = _state["pool"]
            if pool is None or pool.pid != os.getpid():
                pool = _state["pool"] = _new_pool(_state["threads"])
    return pool.run(task, ranges)


_POOL_LOCK = threading.Lock()


def run_split_sum(task, n_items):
    """``run_split``, then the parts' results (arrays) added in range order: per-thread partial sums, such as
    weight gradients, whose total depends on the thread count but not on timing."""
    parts = run_split(task, n_items)
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


class _ExecutorPool:
    """``run_split``'s pool where Numba does not compile (``NUMBA_DISABLE_JIT``): a plain thread pool."""

    def __init__(self, threads):
        self.pid = os.getpid()
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lean")

    def run(self, task, ranges):
        futures = [self.executor.submit(task, a, b) for a, b in ranges]
        return [f.result() for f in futures]

    def close(self):
        self.executor.shutdown()


def _new_pool(threads):
    if numba.config.DISABLE_JIT:
        return _ExecutorPool(threads)
    from ._workers import SpinPool

    return SpinPool(threads - 1)


def float_dtype(*arrays):
    """float64 if any input is float64 (gradient checks), else float32: the dtype policy of every wrapper."""
    return np.float64 if any(np.asarray(a).dtype == np.float64 for a in arrays if a is not None) else np.float32


def keep_freed_memory():
    """Ask glibc to keep freed large blocks for reuse instead of returning them to the OS.

    A training step allocates the same large activations every step; by default each comes from a fresh mmap
    whose pages fault in again (measured ~9% of a ResNet-20 step here). Process-wide, so it is called by the
    trainer and benchmarks, not on import. A no-op where glibc's mallopt is not available.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok_mmap = mallopt(m_mmap_threshold, 1 << 30)
    ok_trim = mallopt(m_trim_threshold, (1 << 31) - 1)
    return bool(ok_mmap and ok_trim)
