"""Cancellation of running steps: one registry of stop events per process (pure state).

`run_archive` registers its `cancel` event for as long as it runs; chunk steps
running in this process (thread engine, Prefect's thread task runner) call
`check()` between sampled frames and stop with `RunCancelled`. A step on
another process (a Dask worker) never sees the event: its engine cancels it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from faceid_jobs.errors import RunCancelled

__all__ = ["cancelled", "check", "watching"]

_lock = threading.Lock()
_events: list[threading.Event] = []


@contextlib.contextmanager
def watching(event: threading.Event | None) -> Iterator[None]:
    """Make `event` stop this process's steps while the block runs."""
    if event is None:
        yield
        return
    with _lock:
        _events.append(event)
    try:
        yield
    finally:
        with _lock:
            _events.remove(event)


def cancelled() -> bool:
    """Whether a registered run was asked to stop."""
    return any(event.is_set() for event in _events)


def check() -> None:
    """Raise `RunCancelled` when a registered run was asked to stop.

    Raises:
        RunCancelled: the run is stopping.
    """
    if cancelled():
        raise RunCancelled("run cancelled")
