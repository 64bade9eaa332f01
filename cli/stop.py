"""SIGINT and SIGTERM for every command: the first stops it cleanly, a second exits at once.

`command()` (cli/common.py) installs a `Stop` around each command. The first
signal raises KeyboardInterrupt in the main thread, so the command unwinds
(its `finally` blocks remove temp files, e.g. annotate's half-written video)
and exits 130, 143 for SIGTERM, printing "interrupted". Inside
`Stop.cancelling()` (a `process` run) it only sets `event`, which the run's
steps see through `pipeline/cancel.py`: no new work starts, running chunks are
dropped, and the run returns what it stored. A second signal `os._exit`s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

__all__ = ["Stop", "current_stop"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """What SIGINT/SIGTERM do while one command runs (see the module docstring)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = int(signal.SIGINT)
        self._raise = True

    @property
    def exit_code(self) -> int:
        """130 after SIGINT (or none), 143 after SIGTERM."""
        return 128 + self.signum

    def handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            os._exit(128 + signum)
        self.signum = signum
        self.event.set()
        if self._raise:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stop]:
        """Handle both signals while the block runs (only the main thread can: elsewhere nothing changes)."""
        global _current
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self.handle) for sig in _SIGNALS}
        outer, _current = _current, self
        try:
            yield self
        finally:
            _current = outer
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def cancelling(self) -> Iterator[threading.Event]:
        """While the block runs the first signal only sets `event` (yielded), handed to the run's steps."""
        from faceid_jobs.pipeline import cancel

        self._raise = False
        try:
            with cancel.watching(self.event, on_signal=self.handle):
                yield self.event
        finally:
            self._raise = True


_current: Stop | None = None


def current_stop() -> Stop:
    """The `Stop` of the command running now (a fresh, uninstalled one outside a command)."""
    return _current or Stop()
