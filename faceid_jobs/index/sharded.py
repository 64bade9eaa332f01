"""Open an index version and search all of its shards (I/O via a Store).

Shards are fetched and decrypted in parallel, streamed (never written to
disk in the clear, never held twice), each checked against the manifest's
sha256 and its own authentication tags. An optional local cache keeps the
encrypted shard bytes, named by their sha256, so a warm cache skips the
download but not the decryption.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.errors import IntegrityError, StoreError
from faceid_jobs.index.manifest import Manifest, load_manifest
from faceid_jobs.index.shard import IndexParams, ShardRef, read_shard
from faceid_jobs.storage.base import Store

__all__ = ["IndexInfo", "ShardRows", "ShardedIndex", "open_index"]


@dataclass(frozen=True)
class IndexInfo:
    """What the opened index version holds."""

    version: int
    vectors: int
    dim: int
    embedder_id: str
    index_by: str
    shards: int
    videos: int
    created_at: str

    @property
    def build_id(self) -> str:
        return f"v{self.version}"

    @property
    def kind(self) -> str:
        return "sharded"


class ShardRows:
    """The metadata rows of every shard, in shard order: what `ShardedIndex.meta` holds.

    Reads as the `pa.Table` of all of them (`table`; every attribute but `take`
    is that table's). `take` gathers from each shard's own table: `take` on the
    concatenation would first concatenate whole columns (Arrow does so for
    chunked columns), ~20 ms per search over 1M rows, three times the FAISS
    search itself.
    """

    def __init__(self, tables: list[pa.Table]) -> None:
        self._tables = tables
        self.table = pa.concat_tables(tables)
        self._starts = np.cumsum([0] + [t.num_rows for t in tables])

    def __getattr__(self, name: str):
        return getattr(self.table, name)

    def __len__(self) -> int:
        return self.table.num_rows

    def take(self, indices) -> pa.Table:
        """Rows by position, in the order given (like `pa.Table.take`)."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.table.num_rows):
            raise IndexError(f"row index out of bounds: {self.table.num_rows} rows")
        if rows.size == 0:
            return self.table.slice(0, 0)
        part = np.searchsorted(self._starts, rows, side="right") - 1
        order = np.argsort(part, kind="stable")
        pieces = [self._tables[p].take(pa.array(rows[order][part[order] == p] - self._starts[p]))
                  for p in np.unique(part)]
        grouped = pa.concat_tables(pieces).combine_chunks()  # rows[order]: a few rows, cheap
        return grouped.take(pa.array(np.argsort(order)))


class ShardedIndex:
    """Several FAISS shards searched as one; `meta` (`ShardRows`) rows follow shard order."""

    def __init__(self, manifest: Manifest, parts: list[tuple[faiss.Index, pa.Table]], nprobe: int) -> None:
        self.manifest = manifest
        self._indexes = [idx for idx, _ in parts]
        for idx in self._indexes:
            with contextlib.suppress(RuntimeError, AttributeError):
                faiss.extract_index_ivf(idx).nprobe = nprobe
        metas = [m for _, m in parts if m.num_rows]
        self.meta = ShardRows(metas) if metas else None
        self._offsets = np.cumsum([0] + [idx.ntotal for idx in self._indexes])
        videos = pc.count_distinct(self.meta.column("video_fingerprint")).as_py() if self.meta is not None else 0
        self.info = IndexInfo(
            version=manifest.version, vectors=int(self._offsets[-1]), dim=manifest.dim,
            embedder_id=manifest.embedder_id, index_by=manifest.index_by,
            shards=len(self._indexes), videos=videos, created_at=manifest.created_at,
        )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over every shard: (scores (q, k'), rows into `meta` (q, k')), best first."""
        q = np.ascontiguousarray(queries, np.float32)
        if q.ndim != 2 or (len(self) and q.shape[1] != self.info.dim):
            raise ValueError(f"queries must be (q, {self.info.dim}), got {q.shape}")
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        all_scores, all_rows = [], []
        for offset, idx in zip(self._offsets[:-1], self._indexes, strict=True):
            if idx.ntotal == 0:
                continue
            scores, rows = idx.search(q, min(k, idx.ntotal))
            all_scores.append(scores)
            all_rows.append(np.where(rows >= 0, rows + offset, -1))
        scores = np.concatenate(all_scores, axis=1)
        rows = np.concatenate(all_rows, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


class _Hashing(io.RawIOBase):
    """Reads through, hashing and optionally copying what passes."""

    def __init__(self, source: BinaryIO, copy: BinaryIO | None = None) -> None:
        self.source = source
        self.copy = copy
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        readinto = getattr(self.source, "readinto", None)
        if readinto is not None:  # files: straight into the caller's buffer, no extra copy
            n = readinto(view) or 0
        else:
            data = self.source.read(len(view))
            n = len(data)
            view[:n] = data
        self.sha.update(view[:n])
        self.size += n
        if self.copy is not None:
            self.copy.write(view[:n])
        return n


def _load_shard(store: Store, keys: DataKeys, ref: ShardRef, cache: Path | None,
                attempts: int = 3) -> tuple[faiss.Index, pa.Table]:
    """Fetch, verify and decrypt a shard; a connection lost mid-download is retried."""
    for attempt in range(1, attempts + 1):
        try:
            return _load_shard_once(store, keys, ref, cache)
        except StoreError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _load_shard_once(store: Store, keys: DataKeys, ref: ShardRef,
                     cache: Path | None) -> tuple[faiss.Index, pa.Table]:
    cached = cache / f"{ref.sha256}.shard" if cache else None
    tmp = None
    if cached is not None and cached.is_file():
        source: BinaryIO = open(cached, "rb")  # noqa: SIM115 - closed in the finally below
    else:
        try:
            source = store.open_read(ref.key)
        except KeyError:
            raise IntegrityError(f"{store.uri}/{ref.key}: shard missing from the store") from None
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".tmp-{uuid.uuid4().hex}")
    copy = open(tmp, "wb") if tmp else None  # noqa: SIM115 - closed in the finally below
    try:
        reader = _Hashing(source, copy)
        index, meta = read_shard(io.BufferedReader(reader, 1 << 20), keys, ref)
        # read_shard drained the container; anything after it is extra bytes.
        while reader.read(1 << 20):
            pass
        if reader.size != ref.size or reader.sha.hexdigest() != ref.sha256:
            raise IntegrityError(f"{ref.key}: shard does not match the manifest's checksum")
    except BaseException:
        if tmp:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    finally:
        source.close()
        if copy:
            copy.close()
    if tmp:
        os.replace(tmp, cached)
    return index, meta


def open_index(store: Store, keys: DataKeys, version: int | None = None, *,
               cache_dir: str | os.PathLike[str] | None = None, nprobe: int = IndexParams.nprobe,
               workers: int = 4) -> ShardedIndex:
    """Load an index version (newest by default) with all of its shards.

    Raises:
        IndexMissingError: no such version.
        IntegrityError: wrong key, missing/tampered/truncated shard, or a shard
            that belongs to another version.
    """
    manifest = load_manifest(store, keys, version)
    cache = Path(cache_dir).expanduser() if cache_dir else None
    if not manifest.shards:
        return ShardedIndex(manifest, [], nprobe)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(manifest.shards)))) as pool:
        parts = list(pool.map(lambda ref: _load_shard(store, keys, ref, cache), manifest.shards))
    try:
        return ShardedIndex(manifest, parts, nprobe)
    except (pa.ArrowException, RuntimeError, ValueError) as exc:  # Arrow or FAISS: never a traceback
        raise IntegrityError(f"{store.uri}: index version {manifest.version}: its shards do not fit "
                             f"together ({exc.__class__.__name__})") from None
