"""The one place where Numba flags and threading are decided; every kernel imports from here.

Threading: Numba's default OpenMP layer spin-waits after each parallel loop and fights OpenBLAS's threads
(measured here: two threads slower than one). We prefer the ``workqueue`` layer, which sleeps, unless the user
chose a layer, and ask OpenMP runtimes to wait passively.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

# fastmath without nnan/ninf: NaN and inf must propagate so a diverging loss is seen, not hidden.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

JIT = dict(cache=True, nogil=True, fastmath=FASTMATH)
PARALLEL_JIT = dict(JIT, parallel=True)

njit = numba.njit
prange = numba.prange


# Index arithmetic in hot loops is done on unsigned integers (``U``): Numba adds a negative-index wraparound
# test to every signed index, which stopped LLVM vectorizing the im2col copy (measured 4-5x slower).
U = numba.uint64

# lean runs its matmuls from its own worker threads (one image range each), so BLAS itself stays on one
# thread: BLAS's idle threads spin after each call and fight ours (the threading trap in PERFORMANCE.md).
_blas_limit = threadpool_limits(limits=1, user_api="blas")
_state = {"threads": numba.config.NUMBA_NUM_THREADS, "pool": None}


def set_threads(n_threads):
    """Set how many threads lean's kernels use: its worker pool and Numba's parallel loops."""
    n_threads = int(n_threads)
    if n_threads < 1:
        raise ValueError(f"threads must be >= 1, got {n_threads}")
    n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n_threads)
    if n_threads != _state["threads"]:
        _state["threads"] = n_threads
        if _state["pool"] is not None:
            _state["pool"].shutdown()
            _state["pool"] = None


def get_threads():
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
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(max_workers=_state["threads"], thread_name_prefix="lean")
    futures = [_state["pool"].submit(task, a, b) for a, b in ranges]
    return [f.result() for f in futures]


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
