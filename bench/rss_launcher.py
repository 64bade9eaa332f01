"""Run a command and record its own peak RSS and wall time (used by bench/run.py).

    python bench/rss_launcher.py RESULT.json COMMAND [ARGS...]

Why a launcher: on Linux a child's `ru_maxrss` also counts the memory of the
process it was forked from (the high-water mark survives fork and is kept
across exec), so a child forked straight from the harness, which holds
gigabytes of test vectors, would report the harness's size. This launcher is
small when it forks, so the figure it writes is the command's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    result, cmd = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)  # stdout/stderr pass through to our parent
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as f:
        json.dump({"maxrss_kib": rusage.ru_maxrss, "wall_s": wall, "returncode": code}, f)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
