"""The face record schema (version 2) and conversion from `Faces` (pure).

One row per detected face. The schema version is stored in the Arrow schema
metadata (`faceid.schema_version`), and readers refuse versions they do not
know instead of guessing, and any schema that is not exactly the record
schema (names, types, nullability, order). Version 2 added the binding of an
encrypted file to its store key (`faceid.store_key`, see `records/parquet.py`);
version 1 files carry none and are refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from faceid_jobs.errors import IntegrityError
from faceid_jobs.types import Faces

__all__ = [
    "META_COLUMNS",
    "SCHEMA_VERSION",
    "STORE_KEY_META",
    "ChunkContext",
    "check_schema",
    "face_id",
    "faces_to_table",
    "record_schema",
]

SCHEMA_VERSION = 2
_VERSION_KEY = b"faceid.schema_version"
_DIM_KEY = b"faceid.embedding_dim"
STORE_KEY_META = b"faceid.store_key"

# Columns a search needs besides the vector (everything but `embedding`).
META_COLUMNS = (
    "face_id",
    "video_uri",
    "video_fingerprint",
    "chunk_index",
    "frame_index",
    "timestamp_s",
    "bbox",
    "landmarks",
    "det_score",
    "liveness",
    "quality",
    "track_id",
    "identity",
)


@dataclass(frozen=True)
class ChunkContext:
    """Facts shared by every row of one chunk."""

    video_uri: str
    video_fingerprint: str
    chunk_index: int
    fps: float
    detector_id: str
    embedder_id: str
    liveness_id: str | None
    analysis_id: str


def record_schema(embedding_dim: int) -> pa.Schema:
    """Arrow schema of face records whose embeddings have `embedding_dim` floats."""
    fields = [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("video_uri", pa.string(), nullable=False),
        pa.field("video_fingerprint", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("frame_index", pa.int64(), nullable=False),
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
        pa.field("landmarks", pa.list_(pa.float32(), 10), nullable=False),
        pa.field("det_score", pa.float32(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), embedding_dim), nullable=False),
        pa.field("detector_id", pa.string(), nullable=False),
        pa.field("embedder_id", pa.string(), nullable=False),
        pa.field("liveness_id", pa.string()),
        pa.field("analysis_id", pa.string(), nullable=False),
        # Filled by later stages (liveness, quality, tracking, enrollment).
        pa.field("liveness", pa.float32()),
        pa.field("quality", pa.float32()),
        pa.field("track_id", pa.int64()),
        pa.field("identity", pa.string()),
    ]
    meta = {_VERSION_KEY: str(SCHEMA_VERSION).encode(), _DIM_KEY: str(embedding_dim).encode()}
    return pa.schema(fields, metadata=meta)


def check_schema(schema: pa.Schema, source: str) -> int:
    """Return the embedding dimension of a stored record schema, or raise.

    Raises:
        IntegrityError: the data is not a face record table of a known version.
    """
    meta = schema.metadata or {}
    version = meta.get(_VERSION_KEY)
    if version is None:
        raise IntegrityError(f"{source}: not a faceid-jobs record file (no schema version)")
    try:
        number, dim = int(version), int(meta.get(_DIM_KEY, b""))
    except ValueError:
        raise IntegrityError(f"{source}: damaged record schema metadata") from None
    if number != SCHEMA_VERSION:
        older = " (written by an older faceid-jobs, not bound to its key: process the videos into a new store)"
        raise IntegrityError(
            f"{source}: record schema version {number} is not supported "
            f"(this build reads version {SCHEMA_VERSION}){older if number < SCHEMA_VERSION else ''}"
        )
    if not 0 < dim <= 65536 or not schema.equals(record_schema(dim), check_metadata=False):
        raise IntegrityError(f"{source}: record file does not have the record schema (columns, types "
                             "or nullability differ)")
    return dim


def face_id(fingerprint: str, frame_index: int, face_index: int) -> str:
    """Deterministic id of the `face_index`-th face (by score) of a frame."""
    key = f"{fingerprint}:{frame_index}:{face_index}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def faces_to_table(faces: Faces, ctx: ChunkContext) -> pa.Table:
    """Face rows of one chunk as an Arrow table in the record schema.

    `faces` must carry embeddings; rows keep their order, and faces of the same
    frame are numbered by that order (detectors emit them by score).
    """
    if faces.embedding is None:
        raise ValueError("faces need embeddings before they become records")
    n = len(faces)
    dim = faces.embedding.shape[1]
    frames = faces.frame_idx.astype(np.int64)
    # Position of each face among the faces of its frame.
    order_in_frame = np.zeros(n, np.int64)
    seen: dict[int, int] = {}
    for i, f in enumerate(frames.tolist()):
        order_in_frame[i] = seen.get(f, 0)
        seen[f] = order_in_frame[i] + 1

    def fixed(values: np.ndarray, width: int) -> pa.FixedSizeListArray:
        flat = pa.array(np.ascontiguousarray(values, np.float32).reshape(-1), pa.float32())
        return pa.FixedSizeListArray.from_arrays(flat, width)

    def optional(values: np.ndarray | None, typ: pa.DataType) -> pa.Array:
        if values is None:
            return pa.nulls(n, typ)
        return pa.array(values, typ)

    ids = [
        face_id(ctx.video_fingerprint, f, k)
        for f, k in zip(frames.tolist(), order_in_frame.tolist(), strict=True)
    ]
    columns = {
        "face_id": pa.array(ids, pa.string()),
        "video_uri": pa.array([ctx.video_uri] * n, pa.string()),
        "video_fingerprint": pa.array([ctx.video_fingerprint] * n, pa.string()),
        "chunk_index": pa.array(np.full(n, ctx.chunk_index, np.int32)),
        "frame_index": pa.array(frames),
        "timestamp_s": pa.array(frames / ctx.fps, pa.float64()),
        "bbox": fixed(faces.xyxy, 4),
        "landmarks": fixed(faces.kps.reshape(n, 10), 10),
        "det_score": pa.array(faces.score.astype(np.float32)),
        "embedding": fixed(faces.embedding, dim),
        "detector_id": pa.array([ctx.detector_id] * n, pa.string()),
        "embedder_id": pa.array([ctx.embedder_id] * n, pa.string()),
        "liveness_id": pa.array([ctx.liveness_id] * n, pa.string()),
        "analysis_id": pa.array([ctx.analysis_id] * n, pa.string()),
        "liveness": optional(faces.liveness, pa.float32()),
        "quality": optional(faces.quality, pa.float32()),
        "track_id": optional(faces.track_id, pa.int64()),
        "identity": pa.nulls(n, pa.string()),
    }
    schema = record_schema(dim)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
