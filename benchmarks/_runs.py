"""Running `lean` commands from benchmark scripts: each is printed before it runs, so a figure can be reproduced
by hand, and its `--json` summary is returned with the wall time.

On this 2-core machine two single-threaded training runs side by side finish sooner than the same runs one after
the other on two threads each (small nets keep two threads only partly busy: a half-width ResNet-20 epoch on
10,000 images took 22.6 s on one thread next to another run, 17.9 s alone on two, so 1.6x the work gets done),
so ``side_by_side`` runs independent chains of commands on workers of one thread each (``threads=1`` in their
``lean_json`` calls).
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def lean_json(*args, threads=None):
    """Run ``lean *args --json`` (with ``--threads``); returns (summary dict, wall seconds). Exits the script on
    failure."""
    cmd = ["lean", *map(str, args), *([] if threads is None else ["--threads", str(threads)]), "--json"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def side_by_side(tasks, jobs=2):
    """Call each function in ``tasks`` (in the order given, ``jobs`` at a time); returns their results in order."""
    if jobs <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda task: task(), tasks))


def machine_line():
    """Which kernel paths this machine takes (CPU features as LLVM reports them, VNNI int8 on or off) and the
    threading lean.configure() set up: printed by each speed benchmark so a figure says what it measured."""
    import numba
    from llvmlite import binding

    from lean.kernels import MADD_AVAILABLE, VNNI_AVAILABLE, simd

    features = binding.get_host_cpu_features()
    has = [name for name in ("avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "avx512bf16") if features.get(name)]
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = numba.config.THREADING_LAYER
    int8 = "AVX-512 VNNI" if VNNI_AVAILABLE else "AVX2 vpmaddwd" if MADD_AVAILABLE else "exact-float BLAS"
    vectors = {16: "AVX-512 (16 lanes)", 8: "AVX2 (8 lanes)", 0: "none (portable NumPy/BLAS paths)"}[simd.SIMD_WIDTH]
    overrides = [f"{name}={os.environ[name]}" for name in ("LEAN_SIMD", "NUMBA_CPU_NAME", "OPENBLAS_CORETYPE")
                 if os.environ.get(name)]
    return (f"CPU {binding.get_host_cpu_name()} ({', '.join(has) or 'no AVX2'}); float32 vector kernels: {vectors}; "
            f"int8 conv path: {int8}; "
            f"Numba threading layer {layer}" + (f"; {', '.join(overrides)}" if overrides else ""))


def append_result(path, row):
    """Append ``row`` (a dict) as one JSON line to ``path`` (a results file of a one-configuration-per-call
    benchmark) and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


def write_figures(path, figures, as_json=False):
    """Write an analytical benchmark's ``figures`` (a dict) to ``path`` as JSON; print them too with ``as_json``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1, default=float) + "\n")
    if as_json:
        print(json.dumps(figures, default=float))


def read_results(path):
    """The rows ``append_result`` wrote to ``path``; exits the script if there are none yet."""
    if not path.exists():
        sys.exit(f"no results yet: {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latest_per_seed(rows, keys):
    """``rows`` with one row per value of ``keys`` (a configuration and its seed): the last one written, so a
    configuration run again replaces its earlier result instead of counting as another seed."""
    latest = {}
    for row in rows:
        latest[tuple(repr(row.get(k)) for k in keys)] = row
    return list(latest.values())


def last_row_where(path, same):
    """The last row of results file ``path`` whose values equal ``same`` (a dict of key -> value), or None (also
    when the file does not exist yet): a stored baseline a later call may reuse."""
    if not path.exists():
        return None
    return next((row for row in reversed(read_results(path)) if all(row.get(k) == v for k, v in same.items())),
                None)


def spread(values, fmt):
    """``mean (min..max)`` of ``values`` (None entries left out) with ``fmt`` (e.g. ``"{:.2f}"``); "-" if none."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    return f"{fmt.format(mean)} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def one_configuration(ap, required, run, summary):
    """Parse ``ap`` (which has ``--summary``), then print the table (``summary()``) or run one configuration
    (``run(args)``), which needs every option in ``required`` (argparse dest names)."""
    args = ap.parse_args()
    if args.summary:
        summary()
    elif any(getattr(args, name) is None for name in required):
        flags = " and ".join("--" + name.replace("_", "-") for name in required)
        ap.error(f"give {flags} (one configuration), or --summary")
    else:
        run(args)
