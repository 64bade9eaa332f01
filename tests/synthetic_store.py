"""Synthetic stores for the enrollment tests: people as clusters of unit vectors, videos of their faces.

No models: each "person" is a random direction, each of their faces that direction plus a little noise,
so a gallery made of the centres labels every face exactly.
"""

from __future__ import annotations

import numpy as np

from faceid_jobs.photo import PhotoFace
from faceid_jobs.records import ChunkContext, faces_to_table, table_to_parquet
from faceid_jobs.storage import VideoEntry, save_entry
from faceid_jobs.storage.layout import record_key

DIM = 16
FPS = 10.0
EMBEDDER = "emb"


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def people(names, seed=0, dim=DIM) -> dict[str, np.ndarray]:
    """Name -> a random unit direction (nearly orthogonal to the others in 16-d)."""
    rng = np.random.default_rng(seed)
    return {n: unit(rng.normal(size=dim)) for n in names}


def faces_of(center: np.ndarray, n: int, rng, noise: float = 0.15) -> np.ndarray:
    return unit(center + noise * rng.normal(size=(n, len(center))).astype(np.float32))


def photo(name: str) -> PhotoFace:
    return PhotoFace(photo=f"{name}.jpg", bbox=(1.0, 2.0, 30.0, 40.0), det_score=0.9, quality=0.8, liveness=0.99,
                     faces_in_photo=1)


def add_video(ws, fp: str, chunks: list[list[tuple[np.ndarray, int | None]]], *, analysis: str = "an",
              embedder: str = EMBEDDER, uri: str | None = None) -> list[str]:
    """Store a video (at `uri`, default ``/videos/FP.mp4``): per chunk, its faces as (embedding, track id);
    one face per frame, frames numbered across chunks. Returns the record keys."""
    uri = uri or f"/videos/{fp}.mp4"
    keys, frame = [], 0
    for c, rows in enumerate(chunks):
        m = len(rows)
        vectors = np.stack([v for v, _ in rows]).astype(np.float32) if m else np.zeros((0, DIM), np.float32)
        tracks = [t for _, t in rows]
        faces_kw = {}
        if m and all(t is not None for t in tracks):
            faces_kw["track_id"] = np.asarray(tracks, np.int64)
        from faceid_jobs.types import Faces

        faces = Faces(
            xyxy=np.tile(np.array([[1, 2, 30, 40]], np.float32), (m, 1)),
            score=np.full(m, 0.9, np.float32),
            kps=np.zeros((m, 5, 2), np.float32),
            frame_idx=np.arange(frame, frame + m, dtype=np.int64),
            embedding=vectors,
            **faces_kw,
        )
        frame += m
        ctx = ChunkContext(uri, fp, c, FPS, "det", embedder, None, analysis)
        key = record_key(analysis, fp, c)
        ws.store.put(key, table_to_parquet(faces_to_table(faces, ctx), ws.cipher, key=key))
        keys.append(key)
    save_entry(ws.store, VideoEntry(fp, uri, FPS, max(frame, 1), 64, 48, analysis, embedder,
                                    len(chunks)), ws.keys)
    return keys
