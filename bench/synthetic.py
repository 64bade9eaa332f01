"""Synthetic inputs: looped/trimmed videos and stores full of synthetic face records.

Records are written only through the project's public functions
(`faces_to_table`, `table_to_parquet` with the workspace's cipher, `save_entry`),
and the harness indexes them with `merge_index`, so the index the search
benchmark opens is exactly what `faceid-jobs process` would have built from
that many faces.

Two kinds of embeddings:

- ``"faces"`` (`face_vectors`): shaped like ArcFace embeddings of many people.
  Identities are centres uniform on the sphere; each has 20–100 faces = centre
  + isotropic Gaussian noise, scaled so that cos(face, centre) ≈ 0.75, hence
  cos ≈ 0.56 between two faces of one person and ≈ 0 ± 0.04 between people.
  A query is a fresh face of a stored identity (`identity_queries`), not a
  stored vector: like a photo of someone seen in the footage.
- ``"uniform"`` (`unit_vectors`): no structure at all, the worst case for any
  clustering (IVF) index; queries are stored vectors plus noise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np


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


class FaceSet:
    """Face-like embeddings: `vectors[i]` is a face of identity `identity[i]`, whose centre is `centres[j]`."""

    def __init__(self, vectors: np.ndarray, identity: np.ndarray, centres: np.ndarray, face_cos: float) -> None:
        self.vectors = vectors
        self.identity = identity
        self.centres = centres
        self.face_cos = face_cos

    def noise_sigma(self) -> float:
        return _noise_sigma(self.face_cos, self.centres.shape[1])


def _noise_sigma(face_cos: float, dim: int) -> float:
    """Per-dimension noise that puts a face at cosine `face_cos` from its centre (in expectation)."""
    return float(np.sqrt((1.0 / face_cos**2 - 1.0) / dim))


def _faces_of(centres: np.ndarray, identity: np.ndarray, sigma: float, rng: np.random.Generator,
              step: int = 65536) -> np.ndarray:
    """Normalised centre + N(0, sigma²) noise for each row's identity (in blocks: bounded scratch)."""
    n, dim = len(identity), centres.shape[1]
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, step):
        e = min(n, s + step)
        v = rng.standard_normal((e - s, dim), dtype=np.float32)
        v *= sigma
        v += centres[identity[s:e]]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[s:e] = v
    return out


def face_vectors(n: int, dim: int = 512, seed: int = 7, *, faces_per_identity: tuple[int, int] = (20, 100),
                 face_cos: float = 0.75) -> FaceSet:
    """n face-like unit vectors: identities of 20–100 faces each, in shuffled order.

    Faces of one identity are spread over the whole set (and so over videos and
    shards), as a person appears in many videos.
    """
    rng = np.random.default_rng(seed)
    lo, hi = faces_per_identity
    counts = rng.integers(lo, hi + 1, n // lo + 1)
    counts = counts[: int(np.searchsorted(np.cumsum(counts), n)) + 1]
    counts[-1] -= int(counts.sum()) - n
    centres = rng.standard_normal((len(counts), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    identity = rng.permutation(np.repeat(np.arange(len(counts), dtype=np.int32), counts))
    vectors = _faces_of(centres, identity, _noise_sigma(face_cos, dim), rng)
    return FaceSet(vectors, identity, centres, face_cos)


def identity_queries(faces: FaceSet, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` fresh faces (not stored ones) of randomly chosen stored identities: (queries, identities)."""
    rng = np.random.default_rng(seed)
    who = rng.choice(np.unique(faces.identity), count, replace=count > len(faces.centres)).astype(np.int32)
    return _faces_of(faces.centres, who, faces.noise_sigma(), rng), who


class SyntheticRecords:
    """`n` synthetic face records over several videos, written to a workspace's store."""

    def __init__(self, vectors: np.ndarray, face_ids: list[str], write_seconds: float, videos: int,
                 chunks: int, faces: FaceSet | None = None) -> None:
        self.vectors = vectors
        self.face_ids = face_ids  # face_ids[i] holds vectors[i]
        self.write_seconds = write_seconds
        self.videos = videos
        self.chunks = chunks
        self.faces = faces  # identities and centres of "faces" data; None for "uniform"

    @property
    def data(self) -> str:
        return "uniform" if self.faces is None else "faces"


def make_index_store(
    ws,
    n: int,
    *,
    embedder_id: str,
    dim: int = 512,
    videos: int = 10,
    rows_per_chunk: int = 5000,
    seed: int = 7,
    data: str = "faces",
) -> SyntheticRecords:
    """Write `n` synthetic face records (spread over `videos` videos) and their catalog entries.

    `ws` is a `faceid_jobs.workspace.Workspace`: record files are encrypted with its cipher,
    exactly as `run_chunk` writes them. Indexing is left to the caller (`merge_index`).
    `data` is "faces" (`face_vectors`) or "uniform" (`unit_vectors`). Record files are
    encoded and encrypted in two threads (Arrow and Parquet work outside the GIL).
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    from faceid_jobs.records import ChunkContext, faces_to_table, table_to_parquet
    from faceid_jobs.storage import VideoEntry, save_entry
    from faceid_jobs.storage.layout import record_key
    from faceid_jobs.types import Faces

    if data not in ("faces", "uniform"):
        raise ValueError(f"data must be faces or uniform, got {data!r}")
    faces = face_vectors(n, dim, seed) if data == "faces" else None
    vectors = faces.vectors if faces is not None else unit_vectors(n, dim, seed)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    fps = 25.0
    analysis_id = "bench000synthetic"
    per_video = -(-n // videos)

    def write(c_start: int, c_stop: int, start: int, fingerprint: str, uri: str, chunk: int,
              extra: dict[str, np.ndarray]) -> list[str]:
        local = np.arange(c_start - start, c_stop - start)
        faces_ = Faces(
            xyxy=extra["xyxy"], score=extra["score"], kps=extra["kps"],
            frame_idx=(local // 2).astype(np.int64),  # two faces per frame, like the Friends clip
            embedding=vectors[c_start:c_stop], liveness=extra["liveness"],
        )
        ctx = ChunkContext(
            video_uri=uri, video_fingerprint=fingerprint, chunk_index=chunk, fps=fps,
            detector_id="5e4447f50245", embedder_id=embedder_id, liveness_id="synthetic",
            analysis_id=analysis_id,
        )
        table = faces_to_table(faces_, ctx)
        key = record_key(analysis_id, fingerprint, chunk)
        ws.store.put(key, table_to_parquet(table, ws.cipher, key=key))
        return table.column("face_id").to_pylist()

    chunks = 0
    jobs = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        start = 0
        for v in range(videos):
            stop = min(n, start + per_video)
            if stop <= start:
                break
            fingerprint = f"s1-bench{v:024x}"
            uri = f"/synthetic/video-{v:03d}.mp4"
            n_video_chunks = 0
            for c_start in range(start, stop, rows_per_chunk):
                m = min(stop, c_start + rows_per_chunk) - c_start
                x1 = rng.uniform(0, 1100, m).astype(np.float32)
                y1 = rng.uniform(0, 540, m).astype(np.float32)
                side = rng.uniform(40, 180, m).astype(np.float32)
                xyxy = np.stack([x1, y1, x1 + side, y1 + side], 1)
                kps = np.repeat(xyxy[:, None, :2], 5, 1) + rng.uniform(0, 40, (m, 5, 2)).astype(np.float32)
                extra = {"xyxy": xyxy, "kps": kps.astype(np.float32),
                         "score": rng.uniform(0.5, 1.0, m).astype(np.float32),
                         "liveness": rng.uniform(0.5, 1.0, m).astype(np.float32)}
                jobs.append(pool.submit(write, c_start, c_start + m, start, fingerprint, uri, n_video_chunks,
                                        extra))
                n_video_chunks += 1
            # entries once the video's records are written, as finish_video does
            for job in jobs[chunks:]:
                job.result()
            frames = int((stop - start + 1) // 2) + 1
            save_entry(ws.store, VideoEntry(
                fingerprint=fingerprint, uri=uri, fps=fps, frame_count=frames, width=1280, height=720,
                analysis_id=analysis_id, embedder_id=embedder_id, chunks=n_video_chunks,
                updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ), ws.keys)
            chunks += n_video_chunks
            start = stop
    face_ids = [f for job in jobs for f in job.result()]
    return SyntheticRecords(vectors, face_ids, time.perf_counter() - t0, videos, chunks, faces)
