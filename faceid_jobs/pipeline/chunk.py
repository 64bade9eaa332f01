"""Process one chunk of one video: decode → detect → align → liveness → embed → track → write.

`run_chunk` is the unit of work: plain, picklable inputs (`ChunkJob`) and
outputs (`ChunkResult`), models looked up from a per-process cache, the
result written to the store atomically under a key that depends only on the
video's content and the analysis settings. Running it twice skips the
second time; a killed run leaves no file behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceid_jobs.config import Settings
from faceid_jobs.models import ModelSet
from faceid_jobs.models.align import align_faces
from faceid_jobs.pipeline import cancel
from faceid_jobs.pipeline.orient import orient_frames
from faceid_jobs.pipeline.prefetch import prefetch
from faceid_jobs.pipeline.quality import face_quality
from faceid_jobs.pipeline.reuse import FrameFaces, ReusePlanner, ReuseRules, fresh_rows, thumbnails
from faceid_jobs.pipeline.tracking import track_faces
from faceid_jobs.records import ChunkContext, faces_to_table, table_to_parquet
from faceid_jobs.storage.layout import record_key
from faceid_jobs.testhooks import crash_point
from faceid_jobs.types import Faces
from faceid_jobs.video import Chunk, iter_chunk_frames
from faceid_jobs.video.rotation import unrotate_faces, unturned_size
from faceid_jobs.video.source import SourceObject, remote_video
from faceid_jobs.workspace import Workspace

__all__ = ["ChunkAnalysis", "ChunkJob", "ChunkResult", "analyse_chunk", "run_chunk"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkJob:
    """Everything needed to process one chunk, as plain values."""

    video_uri: str
    path: str  # a local file holding the video (for a remote one: its URI)
    fingerprint: str
    fps: float
    frame_count: int
    chunk: Chunk
    is_last: bool
    analysis_id: str
    source: SourceObject | None = None  # a remote video is read from here, in ranges


@dataclass(frozen=True)
class ChunkAnalysis:
    """Faces of one chunk (with embeddings and liveness) and what it cost."""

    faces: Faces
    frames_sampled: int
    seconds: float


@dataclass(frozen=True)
class ChunkResult:
    """Outcome of `run_chunk`: "done" (written now) or "skipped" (already stored)."""

    video_uri: str
    chunk_index: int
    status: str
    key: str
    frames_sampled: int = 0
    faces: int = 0
    seconds: float = 0.0


def analyse_chunk(job: ChunkJob, models: ModelSet, settings: Settings) -> ChunkAnalysis:
    """Find, score, embed and track every face in the sampled frames of a chunk.

    Decoding runs one step ahead in a thread; every face is aligned and its
    quality (`faceid_jobs.pipeline.quality`) computed from the aligned crop at once.
    A face that continues a nearly unchanged face of the previous sampled
    frame takes the embedding and liveness of that run's anchor face
    (`faceid_jobs.pipeline.reuse`, up to `reuse_embedding_s` old); the
    others' aligned and liveness crops are collected across frames and sent
    to the embedder and the liveness models in batches of `embed_batch` /
    `liveness_batch`, so each model call sees many faces, and each frame is
    dropped once its faces are cropped. Once every face has its embedding
    the chunk's faces are linked into tracks (`faceid_jobs.pipeline.tracking`).
    Frames are turned for detection as the `rotate` setting says
    (`faceid_jobs.pipeline.orient`); faces are kept in the decoded frame's
    coordinates.
    """
    started = time.perf_counter()
    video = remote_video(job.source) if job.source is not None and job.source.remote else Path(job.path)
    frames = iter_chunk_frames(
        video, job.chunk, job.fps, settings.sample_fps,
        is_last=job.is_last, uri=job.video_uri,
    )
    batch = _FaceBatcher(models, settings)
    sampled = 0
    for frame in orient_frames(prefetch(frames, settings.decode_queue), models.detector.detect, settings.rotate):
        cancel.check()  # a stopping run drops this chunk; nothing of it is written
        sampled += 1
        batch.add(frame.image, frame.faces, frame.frame_idx / job.fps, rotation=frame.rotation)
    faces = track_faces(
        batch.finish(),
        chunk_index=job.chunk.index,
        max_gap_frames=round(settings.track_max_gap_s * job.fps),
        min_iou=settings.track_min_iou,
        min_cosine=settings.track_min_cosine,
    )
    return ChunkAnalysis(faces=faces, frames_sampled=sampled, seconds=time.perf_counter() - started)


class _FaceBatcher:
    """Collects faces across frames and runs embedding and liveness in batches.

    Only faces the `ReusePlanner` marks fresh are cropped for the models; a
    reused face keeps the ordinal of its anchor (`source`), and `finish`
    copies the anchor's outputs once every batch has run (the anchor may sit
    in the same pending batch). Kept per face: its detection, quality and
    source ordinal; per fresh face: its embedding and liveness.
    """

    def __init__(self, models: ModelSet, settings: Settings) -> None:
        self.models = models
        self.batch = max(settings.embed_batch, settings.liveness_batch)
        self.settings = settings
        self.planner = ReusePlanner(ReuseRules(max_age_s=settings.reuse_embedding_s))
        self.faces: list[Faces] = []
        self.sources: list[np.ndarray] = []
        self.crops: list[np.ndarray] = []
        self.live_crops: list[list[np.ndarray]] = []
        self.embeddings: list[np.ndarray] = []
        self.liveness: list[np.ndarray] = []
        self.count = 0

    def add(self, image: np.ndarray, faces: Faces, time_s: float, rotation: int = 0) -> None:
        """Align the faces of one frame and queue the fresh ones for the models.

        Called for every sampled frame, also one without faces: that ends
        every run of reused outputs. `image` is the decoded frame turned
        `rotation` degrees clockwise and `faces` were found in it; they are
        kept (and compared with the previous frame's) in the decoded frame's
        coordinates.
        """
        crops = align_faces(image, faces.kps)
        quality = face_quality(crops, faces.xyxy, faces.score, faces.kps)
        kept = unrotate_faces(faces, rotation, *unturned_size(image.shape, rotation))
        plan = self.planner.plan(FrameFaces(time_s, kept.xyxy, thumbnails(crops), quality))
        if not len(faces):
            return
        fresh = plan.fresh
        self.faces.append(kept.with_fields(quality=quality))
        self.sources.append(plan.source)
        if fresh.any():
            self.crops.append(crops[fresh])
            if self.models.liveness is not None:
                self.live_crops.append(self.models.liveness.crops(image, faces.xyxy[fresh]))
            self.count += int(fresh.sum())
        if self.count >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if not self.crops:
            return
        crops = np.concatenate(self.crops)
        self.embeddings.append(self.models.embedder.embed(crops, batch_size=self.settings.embed_batch))
        if self.models.liveness is not None:
            live = [np.concatenate(parts) for parts in zip(*self.live_crops, strict=True)]
            self.liveness.append(self.models.liveness.score_crops(live, batch_size=self.settings.liveness_batch))
        self.crops, self.live_crops, self.count = [], [], 0

    def finish(self) -> Faces:
        """Every face with its embedding, liveness and quality, in frame order."""
        self._flush()
        if not self.faces:
            return Faces.empty(self.models.embedder.dim)
        faces = Faces.merge(self.faces)
        rows = fresh_rows(np.concatenate(self.sources))
        embedding = np.concatenate(self.embeddings)[rows]
        liveness = np.concatenate(self.liveness)[rows] if self.models.liveness is not None else None
        return faces.with_fields(embedding=embedding, liveness=liveness)


def run_chunk(job: ChunkJob, models: ModelSet, ws: Workspace, settings: Settings) -> ChunkResult:
    """Process a chunk unless the store already holds its records.

    The records are written encrypted (Parquet modular encryption) with the
    workspace's keys.

    Raises:
        VideoError: the chunk's frames cannot be decoded; nothing is written.
        RunCancelled: the run is stopping; nothing is written.
    """
    cancel.check()
    key = record_key(job.analysis_id, job.fingerprint, job.chunk.index)
    if ws.store.exists(key):
        return ChunkResult(job.video_uri, job.chunk.index, "skipped", key)
    crash_point("chunk-start")  # test hook: a chunk held here is mid-run, nothing of it stored
    result = analyse_chunk(job, models, settings)
    ctx = ChunkContext(
        video_uri=job.video_uri,
        video_fingerprint=job.fingerprint,
        chunk_index=job.chunk.index,
        fps=job.fps,
        detector_id=models.ids["detector"],
        embedder_id=models.ids["embedder"],
        liveness_id=models.liveness_id,
        analysis_id=job.analysis_id,
    )
    ws.store.put(key, table_to_parquet(faces_to_table(result.faces, ctx), ws.cipher, key=key))
    crash_point("chunk-stored")
    log.debug("%s chunk %d: %d faces in %d frames", job.video_uri, job.chunk.index,
              len(result.faces), result.frames_sampled)
    return ChunkResult(
        job.video_uri, job.chunk.index, "done", key,
        frames_sampled=result.frames_sampled, faces=len(result.faces), seconds=result.seconds,
    )
