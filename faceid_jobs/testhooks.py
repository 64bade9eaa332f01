"""Test-only fault hooks: end the process at a named step, as `kill -9` would, or hold it there.

``FACEID_JOBS_TEST_CRASH_AT=<step>`` makes `crash_point(step)` call
``os._exit(137)``. ``FACEID_JOBS_TEST_PAUSE_AT=<step>=<path>`` makes it
create ``<path>.paused`` and wait (up to 5 minutes) until ``<path>`` exists,
so a concurrency test can run another command while this one stands at a
known step. Unset (always, outside the fault tests) they do nothing.
Steps are named where they are placed (`identity/forget.py`, `crypto/keyadmin.py`,
`pipeline/chunk.py`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["CRASH_ENV", "PAUSE_ENV", "crash_point"]

CRASH_ENV = "FACEID_JOBS_TEST_CRASH_AT"
PAUSE_ENV = "FACEID_JOBS_TEST_PAUSE_AT"
_PAUSE_LIMIT_S = 300.0


def crash_point(step: str) -> None:
    """End the process at once at `step` when FACEID_JOBS_TEST_CRASH_AT names it; hold it when PAUSE_AT does."""
    if os.environ.get(CRASH_ENV) == step:
        os._exit(137)
    wanted, _, flag = os.environ.get(PAUSE_ENV, "").partition("=")
    if wanted == step and flag:
        Path(flag + ".paused").touch()
        deadline = time.monotonic() + _PAUSE_LIMIT_S
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.05)
