"""Cancellation of running steps: one registry of stop events per process (state; signals only in `keep_sigterm`).

`run_archive` registers its `cancel` event for as long as it runs (the CLI
registers its own, with the signal handler that sets it); chunk steps
running in this process (thread engine, Prefect's thread task runner) call
`check()` between sampled frames and stop with `RunCancelled`, and the run's
loop stops between steps. A step on another process (a Dask worker) never
sees the event: its engine cancels it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from faceid_jobs.errors import RunCancelled

__all__ = ["cancelled", "check", "keep_sigterm", "watching"]

_lock = threading.Lock()
_events: list[threading.Event] = []
_handlers: list[Callable[[int, object], None]] = []


@contextlib.contextmanager
def watching(event: threading.Event | None,
             on_signal: Callable[[int, object], None] | None = None) -> Iterator[None]:
    """Make `event` stop this process's steps while the block runs; `on_signal` is the
    SIGTERM handler that sets it, for `keep_sigterm`."""
    if event is None:
        yield
        return
    with _lock:
        _events.append(event)
        if on_signal is not None:
            _handlers.append(on_signal)
    try:
        yield
    finally:
        with _lock:
            _events.remove(event)
            if on_signal is not None:
                _handlers.remove(on_signal)


@contextlib.contextmanager
def keep_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM goes to the handler registered with `watching`, if any.

    Prefect's flow engine replaces the SIGTERM handler for the flow's duration
    with one that ends the run Crashed; the flow body hands it back so that
    SIGTERM, like SIGINT, stops the run between steps and the flow ends Cancelled.
    Only in the main thread (the only one where handlers can change).
    """
    handler = _handlers[-1] if _handlers else None
    if handler is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
