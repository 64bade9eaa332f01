"""A store over a local directory (I/O).

Atomicity comes from writing a uniquely named temp file in the target's own
folder, fsyncing it and `os.replace`-ing it into place; `put_if_absent` uses a
hard link, which fails if the name exists. Temp files start with `.tmp-` and
are never listed, so a killed writer leaves nothing a reader would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from faceid_jobs.errors import StoreError
from faceid_jobs.storage.base import check_key

__all__ = ["LocalStore"]

_TMP = ".tmp-"


class LocalStore:
    """Objects as files under `root`; keys map to relative paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        if text.startswith("file://"):
            text = text[len("file://") :]
        self.root = Path(text).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"{self.uri}/{key}: cannot read ({exc.strerror})") from None

    def _write_temp(self, path: Path, data: bytes) -> Path:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{_TMP}{uuid.uuid4().hex}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            return tmp
        except OSError as exc:
            raise StoreError(f"{path}: cannot write ({exc.strerror})") from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"{path}: cannot write ({exc.strerror})") from None
        _fsync_dir(path.parent)

    def put_stream(self, key: str, stream: BinaryIO, size: int | None = None) -> None:
        """Copy a file object into place atomically, without holding it in memory."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{_TMP}{uuid.uuid4().hex}"
            with open(tmp, "xb") as f:
                shutil.copyfileobj(stream, f, 4 << 20)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                tmp.unlink()
            raise StoreError(f"{path}: cannot write ({exc.strerror})") from None
        _fsync_dir(path.parent)

    def open_read(self, key: str) -> BinaryIO:
        """A reader over the object (streams; nothing loaded up front)."""
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"{self.uri}/{key}: cannot read ({exc.strerror})") from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
            _fsync_dir(path.parent)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"{path}: cannot write ({exc.strerror})") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the deepest folder the prefix names, then filter by the rest.
        folder, _, _ = prefix.rpartition("/")
        base = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(_TMP)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(_TMP):
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


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable across a power cut; not all filesystems allow it.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
