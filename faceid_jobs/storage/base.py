"""The store interface: a flat key space of immutable-by-convention objects.

Keys are '/'-separated relative paths, built and checked by `storage/layout.py`
(`check_key`: no leading '/', no empty, '.' or '..' segment, no backslash or
control character); every implementation checks each key it is handed. Every put is
atomic: a reader sees the whole new object or the old one, never a part.
Implementations: `LocalStore` (a directory; the default) and, with the
storage issue, S3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from faceid_jobs.storage.layout import check_key

__all__ = ["Store", "check_key", "map_reads", "open_store"]

T = TypeVar("T")
R = TypeVar("R")
# Small independent reads a remote store answers side by side (one HTTP round trip each).
_REMOTE_READERS = 16


@runtime_checkable
class Store(Protocol):
    """What the pipeline needs from storage."""

    uri: str

    def get(self, key: str) -> bytes:
        """The object's bytes; raises KeyError when absent."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) an object atomically."""
        ...

    def put_stream(self, key: str, stream: BinaryIO, size: int | None = None) -> None:
        """Write an object from a file object (large objects), atomically."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A streaming reader over an object; raises KeyError when absent."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write only if no object has the key; False when one already did."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a key prefix, not only a folder), sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; absent keys are fine."""
        ...

    def check(self) -> None:
        """Raise StoreError if the store cannot be reached or written."""
        ...


def open_store(uri: str) -> Store:
    """The store for `uri`: s3://bucket/prefix, or a local directory path (or file:// URI)."""
    if uri.startswith("s3://"):
        from faceid_jobs.storage.s3 import S3Store

        return S3Store(uri)
    from faceid_jobs.storage.local import LocalStore

    return LocalStore(uri)


def map_reads(store: Store, read: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`read` applied to each item, in order: side by side on a remote store (each is a
    round trip: a nightly re-check of 100k catalog entries would otherwise wait on them one
    by one), one after another on a local one."""
    workers = _REMOTE_READERS if "://" in store.uri and len(items) > 1 else 1
    if workers == 1:
        return [read(item) for item in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="faceid-read") as pool:
        return list(pool.map(read, items))
