"""Test-only fault hooks: end the process at a named step, as `kill -9` would (no cleanup, no flush).

``FACEID_JOBS_TEST_CRASH_AT=<step>`` makes `crash_point(step)` call
``os._exit(137)``; unset (always, outside the fault tests) it does nothing.
Steps are named where they are placed (`identity/forget.py`, `crypto/keyadmin.py`).
"""

from __future__ import annotations

import os

__all__ = ["CRASH_ENV", "crash_point"]

CRASH_ENV = "FACEID_JOBS_TEST_CRASH_AT"


def crash_point(step: str) -> None:
    """End the process at once at `step` when FACEID_JOBS_TEST_CRASH_AT names it."""
    if os.environ.get(CRASH_ENV) == step:
        os._exit(137)
