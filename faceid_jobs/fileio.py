"""Atomic, private file writes: the one temp-file + rename in the package (I/O).

A reader sees the old file or the whole new one, never a part; the file is
created with exactly the mode asked for (0600 by default, whatever the
umask), and a symlink or file someone planted at the temp name is never
followed or overwritten: the temp file is created with
O_CREAT | O_EXCL | O_NOFOLLOW under a random name in the target's own folder
(same filesystem, so the rename is atomic), fsynced, renamed over the target
and the folder fsynced. On any failure the temp file is removed and the target
is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "atomic_create", "atomic_path", "atomic_write", "atomic_writer", "fsync_dir"]

# Readers that list folders (LocalStore) skip names with this prefix.
TEMP_PREFIX = ".tmp-"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_ATTEMPTS = 8


def _temp_name() -> str:
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}"


def _open_temp(folder: Path, mode: int, suffix: str = "") -> tuple[BinaryIO, Path]:
    """A new, empty temp file in `folder` with exactly `mode`; never an existing name."""
    for _ in range(_ATTEMPTS):
        tmp = folder / (_temp_name() + suffix)
        try:
            fd = os.open(tmp, _FLAGS, mode)
        except FileExistsError:
            continue  # a leftover, or something planted there: pick another name
        try:
            os.fchmod(fd, mode)  # the umask narrowed the mode os.open applied
            return os.fdopen(fd, "wb"), tmp
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    raise FileExistsError(f"{folder}: no free temporary file name after {_ATTEMPTS} tries")


@contextlib.contextmanager
def _temp_file(folder: Path, mode: int) -> Iterator[tuple[BinaryIO, Path]]:
    """A temp file written by the caller, fsynced on success; removed if the block fails."""
    f, tmp = _open_temp(folder, mode)
    try:
        with f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: int = 0o600) -> Iterator[BinaryIO]:
    """Write a file atomically through a binary file object (for large or streamed data).

    The target appears, complete, when the block ends without an exception;
    if the block or the rename fails, the target is unchanged and no temp
    file is left behind.

    Raises:
        OSError: the folder is missing or cannot be written.
    """
    target = Path(path)
    folder = target.parent
    with _temp_file(folder, mode) as (f, tmp):
        yield f
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(folder)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int = 0o600) -> Iterator[Path]:
    """A temp file's name, for a writer that opens files by name itself (OpenCV's VideoWriter).

    The temp file exists, empty and with exactly `mode`, before the writer
    opens it (which truncates it and keeps the mode); it has the target's
    suffix (writers pick the container by it). When the block ends without
    an exception it is fsynced and renamed over the target; otherwise removed.

    Raises:
        OSError: the folder is missing or cannot be written.
    """
    target = Path(path)
    f, tmp = _open_temp(target.parent, mode, target.suffix)
    f.close()
    try:
        yield tmp
        with open(tmp, "rb") as done:
            os.fsync(done.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace (or create) `path` with `data` atomically, with exactly `mode`.

    Example:
        >>> import tempfile, stat
        >>> folder = Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", b"hello")
        >>> (folder / "a.txt").read_bytes(), oct(stat.S_IMODE((folder / "a.txt").stat().st_mode))
        (b'hello', '0o600')

    Raises:
        OSError: the folder is missing or cannot be written.
    """
    with atomic_writer(path, mode) as f:
        f.write(data)


def atomic_create(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> bool:
    """Create `path` with `data` and exactly `mode` only if no file (or link) has that name.

    The complete temp file is hard-linked to the name, which fails if the
    name exists, so a reader never sees a partial file and two writers never
    both win.

    Returns:
        True when this call created the file, False when the name existed.

    Raises:
        OSError: the folder is missing or cannot be written.
    """
    target = Path(path)
    with _temp_file(target.parent, mode) as (f, tmp):
        f.write(data)
    try:
        os.link(tmp, target, follow_symlinks=False)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(target.parent)
    return True


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in `folder` durable across a power cut (not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
