"""A store over a local directory (I/O).

Atomicity comes from `fileio`: a uniquely named temp file in the target's own
folder, fsynced and `os.replace`-d into place; `put_if_absent` hard-links the
temp file, which fails if the name exists. Temp files start with `.tmp-` and
are never listed, so a killed writer leaves nothing a reader would trust.

Confinement: every key is checked (`layout.check_key`) and its path resolved;
a key or list prefix whose path leads outside the root (through a symlink
someone planted in the store) raises `StoreKeyError`, so nothing outside the
store is ever read, listed, written or deleted through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from faceid_jobs.errors import StoreError, StoreUnwritableError
from faceid_jobs.fileio import TEMP_PREFIX, atomic_create, atomic_write, atomic_writer
from faceid_jobs.storage.layout import AUDIT_PREFIX, StoreKeyError, check_key, check_prefix

__all__ = ["UNWRITABLE_ERRNOS", "LocalStore"]

# Store objects are encrypted or hold no biometric data; readable by the group
# and others as before, so a service account can read a store another user wrote.
_MODE = 0o644
# Audit records say who did what to whom and when (names only as keyed hashes): owner only.
_PRIVATE_PREFIXES = (AUDIT_PREFIX,)


def _mode(key: str) -> int:
    return 0o600 if key.startswith(_PRIVATE_PREFIXES) else _MODE


class LocalStore:
    """Objects as files under `root`; keys map to relative paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        if text.startswith("file://"):
            text = text[len("file://") :]
        self.root = Path(text).expanduser().resolve()
        self.uri = str(self.root)

    def _inside(self, path: Path, key: str) -> Path:
        """`path`, refused when it resolves (symlinks followed) outside the root."""
        if not path.resolve().is_relative_to(self.root):
            raise StoreKeyError(f"{self.uri}: store key {key!r} leads outside the store (symlink in the store)")
        return path

    def _path(self, key: str) -> Path:
        return self._inside(self.root.joinpath(*check_key(key).split("/")), key)

    def get(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self._mkdir(path.parent, key)
            atomic_write(path, data, _mode(key))
        except OSError as exc:
            raise write_error(path, exc) from None

    def put_stream(self, key: str, stream: BinaryIO, size: int | None = None) -> None:
        """Copy a file object into place atomically, without holding it in memory."""
        path = self._path(key)
        try:
            self._mkdir(path.parent, key)
            with atomic_writer(path, _mode(key)) as f:
                while chunk := stream.read(4 << 20):
                    f.write(chunk)
        except OSError as exc:
            raise write_error(path, exc) from None

    def open_read(self, key: str) -> BinaryIO:
        """A reader over the object (streams; nothing loaded up front)."""
        path = self._path(key)
        try:
            # O_NOFOLLOW: a symlink swapped in after the check above is refused, not followed.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            if path.is_symlink():
                raise StoreKeyError(f"{self.uri}: store key {key!r} is a symlink (refused)") from None
            raise StoreError(f"{self.uri}/{key}: cannot read ({exc.strerror})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StoreError(f"{self.uri}/{key}: cannot read (not a file)")
        return os.fdopen(fd, "rb")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            self._mkdir(path.parent, key)
            return atomic_create(path, data, _mode(key))
        except OSError as exc:
            raise write_error(path, exc) from None

    def _mkdir(self, folder: Path, key: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._inside(folder, key)  # a folder made through a symlink planted meanwhile

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the deepest folder the prefix names, then filter by the rest.
        folder, _, _ = check_prefix(prefix).rpartition("/")
        base = self._inside(self.root.joinpath(*folder.split("/")), prefix) if folder else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        # followlinks=False: a symlinked folder inside the store is not walked into.
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.uri}: cannot create store folder ({exc.strerror})") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"{self.uri}: store folder is not writable")

    def __repr__(self) -> str:
        return f"LocalStore({self.uri!r})"


# A full disk or quota, a read-only filesystem, a permission: waiting cures none of them
# (`pipeline.summary.is_transient` never retries them).
UNWRITABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def write_error(path: Path, exc: OSError) -> StoreError:
    """One line naming the path and the problem; for a full disk or quota, the free space too."""
    reason = exc.strerror or str(exc)
    if exc.errno not in UNWRITABLE_ERRNOS:
        return StoreError(f"{path}: cannot write ({reason})")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
        with contextlib.suppress(OSError):
            reason += f"; {shutil.disk_usage(folder).free / 2**20:.1f} MiB free there"
    return StoreUnwritableError(f"{path}: cannot write ({reason})")
