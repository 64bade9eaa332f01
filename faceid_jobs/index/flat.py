"""Exact inner-product index over all current face records (I/O via a Store).

A build streams the current record file of every catalogued video into a
FAISS `IndexFlatIP` (rows are added chunk by chunk, so only the index itself
is held in memory), stores the index and its metadata rows as one immutable
build, then points `index/flat/LATEST.json` at it. Readers follow the pointer,
so they see the previous build or the new one, never a half-written one.
The storage issue replaces this with versioned, encrypted shards behind the
same `FaceIndex` interface.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceid_jobs.errors import IndexMissingError, IntegrityError
from faceid_jobs.records import META_COLUMNS, parquet_to_table
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.storage.layout import INDEX_LATEST, index_files, record_prefix

__all__ = ["FaceIndex", "IndexInfo", "build_index", "load_index"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexInfo:
    """What an index build holds."""

    build_id: str
    kind: str
    vectors: int
    dim: int
    embedder_id: str
    videos: int
    created_at: str
    vectors_sha256: str
    meta_sha256: str


class FaceIndex:
    """A loaded index: vectors in FAISS, metadata rows in Arrow (same order)."""

    def __init__(self, info: IndexInfo, index: faiss.Index, meta: pa.Table) -> None:
        self.info = info
        self._index = index
        self.meta = meta

    def __len__(self) -> int:
        return self._index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query by cosine similarity (queries are L2-normalised).

        Args:
            queries: (q, D) float32.
            k: neighbours per query.

        Returns:
            (scores (q, k') float32, rows (q, k') int64), k' = min(k, len);
            rows index `self.meta`.
        """
        q = np.ascontiguousarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != self.info.dim:
            raise ValueError(f"queries must be (q, {self.info.dim}), got {q.shape}")
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, rows = self._index.search(q, k)
        return scores, rows


def build_index(store: Store, embedder_id: str) -> IndexInfo:
    """Index the current records of every catalogued video embedded by `embedder_id`.

    Videos analysed with another embedder are left out (their vectors live in
    another space) and logged.
    """
    index: faiss.Index | None = None
    metas: list[pa.Table] = []
    videos = 0
    for entry in list_entries(store):
        if entry.embedder_id != embedder_id:
            log.warning("%s: analysed with embedder %s, not %s; not indexed",
                        entry.uri, entry.embedder_id, embedder_id)
            continue
        videos += 1
        for key in store.list(record_prefix(entry.analysis_id, entry.fingerprint)):
            table = parquet_to_table(store.get(key), key)
            if table.num_rows == 0:
                continue
            emb = table.column("embedding").combine_chunks()
            dim = emb.type.list_size
            vectors = np.asarray(emb.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
            if index is None:
                index = faiss.IndexFlatIP(dim)
            elif index.d != dim:
                raise IntegrityError(f"{key}: embedding dimension {dim} differs from {index.d}")
            index.add(vectors)
            meta = table.select(list(META_COLUMNS))
            # Show the video where it was last seen, not where it first was.
            uris = pa.array([entry.uri] * table.num_rows, pa.string())
            metas.append(meta.set_column(meta.schema.get_field_index("video_uri"), "video_uri", uris))
    if index is None:
        index = faiss.IndexFlatIP(1)
    meta_table = pa.concat_tables(metas) if metas else _empty_meta()

    vectors_blob = faiss.serialize_index(index).tobytes()
    sink = io.BytesIO()
    pq.write_table(meta_table, sink, compression="zstd")
    meta_blob = sink.getvalue()

    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    info = IndexInfo(
        build_id=build_id,
        kind="flat-ip",
        vectors=int(index.ntotal),
        dim=int(index.d),
        embedder_id=embedder_id,
        videos=videos,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        vectors_sha256=hashlib.sha256(vectors_blob).hexdigest(),
        meta_sha256=hashlib.sha256(meta_blob).hexdigest(),
    )
    vectors_key, meta_key = index_files(build_id)
    store.put(vectors_key, vectors_blob)
    store.put(meta_key, meta_blob)
    previous = _read_latest(store)
    store.put(INDEX_LATEST, json.dumps(asdict(info), indent=1).encode())
    # Keep the build just replaced: a reader that read the old pointer a moment
    # ago may still be fetching its files. Anything older is unreachable.
    keep = {build_id, previous.build_id if previous else build_id}
    for key in store.list("index/flat/"):
        parts = key.split("/")
        if len(parts) == 4 and parts[2] not in keep:
            store.delete(key)
    return info


def load_index(store: Store) -> FaceIndex:
    """Load the newest index build, verifying both files against the pointer.

    Raises:
        IndexMissingError: nothing has been indexed in this store yet.
        IntegrityError: a file is missing or does not match its checksum.
    """
    info = _read_latest(store)
    if info is None:
        raise IndexMissingError(
            f"{store.uri}: no index yet (run `faceid-jobs process` on some footage first)"
        )
    vectors_key, meta_key = index_files(info.build_id)
    blobs = []
    for key, digest in ((vectors_key, info.vectors_sha256), (meta_key, info.meta_sha256)):
        try:
            blob = store.get(key)
        except KeyError:
            raise IntegrityError(f"{store.uri}/{key}: index file missing") from None
        if hashlib.sha256(blob).hexdigest() != digest:
            raise IntegrityError(f"{store.uri}/{key}: index file does not match its checksum")
        blobs.append(blob)
    index = faiss.deserialize_index(np.frombuffer(blobs[0], np.uint8))
    meta = pq.read_table(io.BytesIO(blobs[1]))
    if index.ntotal != meta.num_rows or index.ntotal != info.vectors:
        raise IntegrityError(f"{store.uri}: index build {info.build_id} is inconsistent")
    return FaceIndex(info, index, meta)


def _read_latest(store: Store) -> IndexInfo | None:
    try:
        raw = store.get(INDEX_LATEST)
    except KeyError:
        return None
    try:
        return IndexInfo(**json.loads(raw))
    except (ValueError, TypeError):
        raise IntegrityError(f"{store.uri}/{INDEX_LATEST}: damaged index pointer") from None


def _empty_meta() -> pa.Table:
    from faceid_jobs.records import record_schema

    schema = record_schema(1)
    return schema.empty_table().select(list(META_COLUMNS))
