"""Running `lean` commands from benchmark scripts: each is printed before it runs, so a figure can be reproduced
by hand, and its `--json` summary is returned with the wall time."""

import json
import subprocess
import sys
import time


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
