"""Synthetic inputs: looped/trimmed videos and stores full of random face records.

Records are written only through the project's public functions
(`faces_to_table`, `table_to_parquet` with the workspace's cipher, `save_entry`),
and the harness indexes them with `merge_index`, so the index the search
benchmark opens is exactly what `faceid-jobs process` would have built from
that many faces.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

__all__ = ["SyntheticRecords", "make_index_store", "unit_vectors", "write_video"]


def write_video(src: Path, dst: Path, *, loops: int = 1, max_frames: int | None = None) -> dict:
    """Re-encode `src` (first `max_frames` frames) `loops` times into `dst` (MPEG-4, same fps/size).

    Returns the written file's facts (frames, fps, seconds).
    """
    cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {dst} with the mp4v codec")
    n = 0
    try:
        for _ in range(loops):  # stream the source again per loop: flat memory
            cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
            taken = 0
            try:
                while max_frames is None or taken < max_frames:
                    ok, f = cap.read()
                    if not ok:
                        break
                    writer.write(f)
                    taken += 1
            finally:
                cap.release()
            n += taken
    finally:
        writer.release()
    return {"path": str(dst), "frames": n, "fps": fps, "seconds": n / fps, "loops": loops,
            "bytes": dst.stat().st_size}


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """n random L2-normalised float32 vectors (Gaussian, so uniform on the sphere)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


class SyntheticRecords:
    """`n` random face records over several videos, written to a workspace's store."""

    def __init__(self, vectors: np.ndarray, face_ids: list[str], write_seconds: float, videos: int,
                 chunks: int) -> None:
        self.vectors = vectors
        self.face_ids = face_ids  # face_ids[i] holds vectors[i]
        self.write_seconds = write_seconds
        self.videos = videos
        self.chunks = chunks


def make_index_store(
    ws,
    n: int,
    *,
    embedder_id: str,
    dim: int = 512,
    videos: int = 10,
    rows_per_chunk: int = 5000,
    seed: int = 7,
) -> SyntheticRecords:
    """Write `n` synthetic face records (spread over `videos` videos) and their catalog entries.

    `ws` is a `faceid_jobs.workspace.Workspace`: record files are encrypted with its cipher,
    exactly as `run_chunk` writes them. Indexing is left to the caller (`merge_index`).
    """
    import time

    from faceid_jobs.records import ChunkContext, faces_to_table, table_to_parquet
    from faceid_jobs.storage import VideoEntry, save_entry
    from faceid_jobs.storage.layout import record_key
    from faceid_jobs.types import Faces

    vectors = unit_vectors(n, dim, seed)
    rng = np.random.default_rng(seed + 1)
    fps = 25.0
    analysis_id = "bench000synthetic"
    per_video = -(-n // videos)
    chunks = 0
    face_ids: list[str] = []
    t0 = time.perf_counter()
    start = 0
    for v in range(videos):
        stop = min(n, start + per_video)
        if stop <= start:
            break
        fingerprint = f"s1-bench{v:024x}"
        uri = f"/synthetic/video-{v:03d}.mp4"
        n_video_chunks = 0
        for c_start in range(start, stop, rows_per_chunk):
            c_stop = min(stop, c_start + rows_per_chunk)
            m = c_stop - c_start
            local = np.arange(c_start - start, c_stop - start)
            # two faces per frame, like the Friends clip
            frame = (local // 2).astype(np.int64)
            x1 = rng.uniform(0, 1100, m).astype(np.float32)
            y1 = rng.uniform(0, 540, m).astype(np.float32)
            side = rng.uniform(40, 180, m).astype(np.float32)
            xyxy = np.stack([x1, y1, x1 + side, y1 + side], 1)
            kps = np.repeat(xyxy[:, None, :2], 5, 1) + rng.uniform(0, 40, (m, 5, 2)).astype(np.float32)
            faces = Faces(
                xyxy=xyxy,
                score=rng.uniform(0.5, 1.0, m).astype(np.float32),
                kps=kps.astype(np.float32),
                frame_idx=frame,
                embedding=vectors[c_start:c_stop],
                liveness=rng.uniform(0.5, 1.0, m).astype(np.float32),
            )
            ctx = ChunkContext(
                video_uri=uri, video_fingerprint=fingerprint, chunk_index=n_video_chunks, fps=fps,
                detector_id="5e4447f50245", embedder_id=embedder_id, liveness_id="synthetic",
                analysis_id=analysis_id,
            )
            table = faces_to_table(faces, ctx)
            face_ids += table.column("face_id").to_pylist()
            key = record_key(analysis_id, fingerprint, n_video_chunks)
            ws.store.put(key, table_to_parquet(table, ws.cipher))
            n_video_chunks += 1
        frames = int((stop - start + 1) // 2) + 1
        save_entry(ws.store, VideoEntry(
            fingerprint=fingerprint, uri=uri, fps=fps, frame_count=frames, width=1280, height=720,
            analysis_id=analysis_id, embedder_id=embedder_id, chunks=n_video_chunks,
            updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ))
        chunks += n_video_chunks
        start = stop
    return SyntheticRecords(vectors, face_ids, time.perf_counter() - t0, videos, chunks)
