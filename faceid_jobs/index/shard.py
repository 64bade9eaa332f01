"""Index shards: a FAISS index plus its metadata rows in one encrypted container (I/O via a Store).

Plaintext layout inside the container (see `crypto/stream.py` for the
container itself): two parts, the FAISS index then the metadata rows as
Parquet, each written as frames `u32 length | bytes` and ended by a zero-length
frame. Frames let both parts stream through encryption without knowing their
size first, so a shard of any size is written and read holding the index
once (never a serialised copy beside it) plus one segment.

The container header carries `shard_id`, `created_version` and `key_ref`;
readers check them against the manifest, so a shard swapped for another, or
copied in from another index version, is refused.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.stream import SegmentWriter, read_container
from faceid_jobs.errors import IntegrityError

__all__ = ["SHARDS_PREFIX", "IndexParams", "ShardRef", "build_faiss", "read_shard", "write_shard"]

SHARDS_PREFIX = "index/shards/"
_FRAME = 1 << 20


@dataclass(frozen=True)
class IndexParams:
    """How shards index their vectors.

    Attributes:
        exact_max: shards with at most this many vectors use exact search
            (FlatIP); larger ones use IVF with an HNSW coarse quantizer.
        ivf_codec: "flat" (full vectors), "sq8" (8-bit scalar quantised:
            4× smaller, slightly lower recall) or "pq" (product quantised).
        nprobe: IVF lists visited per query: more finds more, costs time.
        shard_max: most vectors in one shard built by a merge.
    """

    exact_max: int = 200_000
    ivf_codec: str = "flat"
    nprobe: int = 64
    shard_max: int = 500_000


@dataclass(frozen=True)
class ShardRef:
    """A shard as a manifest lists it."""

    shard_id: str
    key: str
    size: int
    sha256: str
    vectors: int
    dim: int
    kind: str
    key_ref: str
    created_version: int
    sources: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict) -> ShardRef:
        return cls(**(data | {"sources": tuple(data["sources"])}))


def build_faiss(vectors: np.ndarray, params: IndexParams) -> tuple[faiss.Index, str]:
    """An inner-product index over L2-normalised (n, D) float32 vectors.

    Returns:
        (index, kind) with kind "flat" or "ivf<nlist>-hnsw-<codec>".
    """
    n, d = vectors.shape
    if n <= params.exact_max:
        index = faiss.IndexFlatIP(d)
        index.add(vectors)
        return index, "flat"
    nlist = int(min(65536, max(64, 4 * math.sqrt(n))))
    codec = {"flat": "Flat", "sq8": "SQ8", "pq": f"PQ{max(1, d // 8)}"}[params.ivf_codec]
    index = faiss.index_factory(d, f"IVF{nlist},{codec}", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    # HNSW over the centroids makes the coarse search sub-linear in nlist.
    ivf.quantizer = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    ivf.own_fields = True
    ivf.cp.min_points_per_centroid = 5
    rng = np.random.default_rng(0)
    train = vectors if n <= 64 * nlist else vectors[rng.choice(n, 64 * nlist, replace=False)]
    index.train(train)
    index.add(vectors)
    ivf.nprobe = params.nprobe
    return index, f"ivf{nlist}-hnsw-{params.ivf_codec}"


class _FrameSink:
    """Collects small writes into frames and hands them to the container writer."""

    def __init__(self, writer: SegmentWriter) -> None:
        self.writer = writer
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= _FRAME:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self.writer.write(struct.pack(">I", len(self.buf)) + bytes(self.buf))
            self.buf.clear()

    def end(self) -> None:
        self.flush()
        self.writer.write(struct.pack(">I", 0))


class _HashingFile(io.RawIOBase):
    def __init__(self, f: io.BufferedWriter) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)


def write_shard(store, keys: DataKeys, index: faiss.Index, meta: pa.Table, *, kind: str,
                created_version: int, sources: tuple[str, ...]) -> ShardRef:
    """Encrypt and store a shard under a new id; returns its manifest entry."""
    shard_id = uuid.uuid4().hex
    key_ref, dek = keys.create()
    key = f"{SHARDS_PREFIX}{shard_id}.shard"
    fields = {"kind": "faceid-shard", "shard_id": shard_id, "created_version": created_version,
              "key_ref": key_ref}
    with tempfile.TemporaryFile() as tmp:
        sink = _HashingFile(tmp)
        writer = SegmentWriter(sink, dek, fields)
        frames = _FrameSink(writer)
        faiss.write_index(index, faiss.PyCallbackIOWriter(frames.write))
        frames.end()
        meta_frames = _FrameSink(writer)
        pq.write_table(meta, _Writable(meta_frames), compression="zstd")
        meta_frames.end()
        writer.close()
        tmp.flush()
        tmp.seek(0)
        store.put_stream(key, tmp, sink.size)
    return ShardRef(shard_id, key, sink.size, sink.sha.hexdigest(), int(index.ntotal), int(index.d),
                    kind, key_ref, created_version, tuple(sources))


class _Writable(io.RawIOBase):
    def __init__(self, frames: _FrameSink) -> None:
        self.frames = frames

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:
        return self.frames.write(bytes(b))


class _FrameReader:
    """Reads framed parts from the stream of decrypted segments."""

    def __init__(self, segments: Iterator[bytes], name: str) -> None:
        self.segments = segments
        self.name = name
        self.buf = bytearray()
        self.frame_left = 0
        self.part_done = False

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            try:
                self.buf += next(self.segments)
            except StopIteration:
                raise IntegrityError(f"{self.name}: truncated shard") from None

    def _take(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self, n: int) -> bytes:
        """Up to n bytes of the current part; b"" at its end."""
        if self.part_done:
            return b""
        if self.frame_left == 0:
            (self.frame_left,) = struct.unpack(">I", self._take(4))
            if self.frame_left == 0:
                self.part_done = True
                return b""
        out = self._take(min(n, self.frame_left))
        self.frame_left -= len(out)
        return out

    def next_part(self) -> None:
        self.part_done = False
        self.frame_left = 0

    def read_all(self) -> bytes:
        parts = []
        while chunk := self.read(_FRAME):
            parts.append(chunk)
        return b"".join(parts)


def read_shard(blob_stream: io.BufferedIOBase, keys: DataKeys, ref: ShardRef) -> tuple[faiss.Index, pa.Table]:
    """Decrypt, verify and load a shard (index, metadata rows).

    Raises:
        IntegrityError: wrong key, tampered or truncated bytes, or a shard
            that is not the one the manifest names.
    """
    name = ref.key
    expect = {"shard_id": ref.shard_id, "created_version": ref.created_version, "key_ref": ref.key_ref}
    segments = read_container(blob_stream, lambda header: keys.get(ref.key_ref, name), name, expect)
    reader = _FrameReader(segments, name)
    failure: list[IntegrityError] = []

    def read(n: int) -> bytes:
        try:
            return reader.read(n)
        except IntegrityError as exc:  # faiss would turn it into a bare RuntimeError
            failure.append(exc)
            raise

    try:
        index = faiss.read_index(faiss.PyCallbackIOReader(read))
    except RuntimeError as exc:
        if failure:
            raise failure[0] from None
        detail = (str(exc).strip().splitlines() or ["unreadable"])[0][:80]
        raise IntegrityError(f"{name}: damaged index data ({detail})") from None
    while reader.read(_FRAME):  # whatever faiss did not need of its part
        pass
    reader.next_part()
    meta = pq.read_table(io.BytesIO(reader.read_all()))
    # Drain: the last segment's tag (and the end flag) must still verify.
    for _ in segments:
        pass
    if index.ntotal != ref.vectors or meta.num_rows != ref.vectors:
        raise IntegrityError(f"{name}: shard holds {index.ntotal} vectors, manifest says {ref.vectors}")
    return index, meta
