"""Leave the process once Python's own exit work is done, without C++ static destructors.

Arrow's global thread pools can abort the process while the C++ runtime tears
them down at exit (SIGABRT, "terminate called without an active exception";
apache/arrow#34314): now and then a command that had printed its answer, or
its one-line error, ended with status -6 instead of its own. So the console
script records its exit status, and a handler that runs after every other
Python exit handler (threads joined, logs flushed) flushes the standard
streams and ends the process with that status.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable

__all__ = ["run_then_exit"]

_status: list[int] = []


def _leave() -> None:
    if not _status:
        return  # not the console script (e.g. imported by a test): a normal exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(_status[0])


# Registered on import, before any library registers its own: atexit runs
# handlers last-registered first, so this one runs after all of them.
atexit.register(_leave)


def _code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    return 1  # sys.exit("message"): Python prints the message, the status is 1


def run_then_exit(main: Callable[[], None]) -> None:
    """Run `main`, then exit with its status (0, a `SystemExit`'s code, 130 on Ctrl-C, 1 on a crash)."""
    try:
        main()
    except SystemExit as stop:
        _status.append(_code(stop))
        raise
    except KeyboardInterrupt:
        _status.append(130)
        raise
    except BaseException:
        _status.append(1)
        raise
    _status.append(0)
