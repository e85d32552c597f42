"""Running `lean` commands from benchmark scripts: each is printed before it runs, so a figure can be reproduced
by hand, and its `--json` summary is returned with the wall time.

On this 2-core machine two single-threaded training runs side by side finish sooner than the same runs one after
the other on two threads each (small nets keep two threads only partly busy: per epoch, a half-width ResNet-20 on
one thread next to another run took 17.6 s against 19.1 s alone on two), so ``lean_json_parallel`` runs
independent commands on ``jobs`` workers of one thread each.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def lean_json(*args):
    """Run ``lean *args --json``; returns (summary dict, wall seconds). Exits the script on failure."""
    cmd = ["lean", *map(str, args), "--json"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def lean_json_parallel(arg_lists, jobs=2):
    """``lean_json`` for each argument list, ``jobs`` at a time (each with ``--threads 1`` when jobs > 1), started
    in the order given; returns the (summary, wall seconds) pairs in that order."""
    if jobs <= 1:
        return [lean_json(*args) for args in arg_lists]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda args: lean_json(*args, "--threads", 1), arg_lists))
