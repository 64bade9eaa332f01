"""`python -m tests.faults.full_store ARGS…`: the `faceid-jobs` CLI on a local store whose disk is full.

A fake full disk that needs no root (no tmpfs to mount): while the file named by
``FACEID_JOBS_TEST_DISK_FULL`` exists, every store write fails as a full disk fails it
(``OSError(ENOSPC)``) after the number of writes the file holds (empty: none), so a
test can fill the disk mid-operation; delete the file and there is space again.
Only the store's writes are refused (`storage/local.py`): key files and the client's
state are written as usual.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faceid_jobs.storage.local as local

FLAG_ENV = "FACEID_JOBS_TEST_DISK_FULL"
_writes = 0
_lock = threading.Lock()


def _full(write: Callable[..., Any]) -> Callable[..., Any]:
    def full(path: Any, *args: Any, **kwargs: Any) -> Any:
        global _writes
        flag = os.environ.get(FLAG_ENV, "")
        if flag and os.path.exists(flag):
            allowed = int(Path(flag).read_text().strip() or 0)
            with _lock:
                _writes += 1
                if _writes > allowed:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write(path, *args, **kwargs)

    return full


for _name in ("atomic_write", "atomic_writer", "atomic_create"):
    setattr(local, _name, _full(getattr(local, _name)))

if __name__ == "__main__":
    from faceid_jobs.cli.main import main

    sys.argv[0] = "faceid-jobs"
    sys.exit(main())
