"""Process sources into stored face records and an index, in this process.

This is the local driver: videos one after another, chunks in order, each
chunk through `run_chunk`. A failing video or chunk is recorded and the rest
go on. The Prefect flow reuses `plan_video`, `run_chunk` and `finish_video`
and only replaces the loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from faceid_jobs.config import Settings
from faceid_jobs.errors import FaceIdError
from faceid_jobs.index import MergeResult, index_params, merge_index
from faceid_jobs.models import ModelSet
from faceid_jobs.pipeline.chunk import ChunkResult, run_chunk
from faceid_jobs.pipeline.plan import VideoPlan, plan_video
from faceid_jobs.pipeline.sources import discover_videos
from faceid_jobs.records.parquet import open_parquet
from faceid_jobs.search.appearances import settings_selector
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import VideoEntry, load_entry, save_entry
from faceid_jobs.storage.layout import record_key
from faceid_jobs.video import local_path
from faceid_jobs.workspace import Workspace

__all__ = [
    "Failure",
    "ProcessObserver",
    "ProcessSummary",
    "count_stored_faces",
    "finish_video",
    "label_new_records",
    "merge_for",
    "process_sources",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A video (chunk None) or chunk that could not be processed."""

    video: str
    chunk: int | None
    error: str


@dataclass
class ProcessSummary:
    """What a `process` run did; `to_json()` is the CLI's `--json` output."""

    videos: int = 0
    chunks_done: int = 0
    chunks_skipped: int = 0
    chunks_failed: int = 0
    frames_sampled: int = 0
    faces: int = 0
    faces_in_store: int = 0
    indexed_vectors: int | None = None
    video_seconds: float = 0.0
    processed_video_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    index: MergeResult | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def speed(self) -> float:
        """Video seconds analysed (not skipped) per wall-clock second."""
        return self.processed_video_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def add(self, result: ChunkResult, chunk_seconds: float) -> None:
        if result.status == "skipped":
            self.chunks_skipped += 1
        else:
            self.chunks_done += 1
            self.frames_sampled += result.frames_sampled
            self.faces += result.faces
            self.processed_video_seconds += chunk_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "chunks": {
                "done": self.chunks_done,
                "skipped": self.chunks_skipped,
                "failed": self.chunks_failed,
            },
            "frames_sampled": self.frames_sampled,
            "faces": self.faces,
            "faces_in_store": self.faces_in_store,
            "indexed_vectors": self.indexed_vectors,
            "video_seconds": round(self.video_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "video_seconds_per_second": round(self.speed, 3),
            "failures": [asdict(f) for f in self.failures],
            "index": asdict(self.index) if self.index else None,
        }


class ProcessObserver:
    """Progress hooks for `process_sources`; the default does nothing."""

    def videos_found(self, count: int) -> None: ...

    def video_started(self, plan: VideoPlan) -> None: ...

    def chunk_finished(self, plan: VideoPlan, frames: int, result: ChunkResult | None) -> None: ...

    def video_finished(self, uri: str) -> None: ...

    def failure(self, failure: Failure) -> None: ...

    def indexing(self) -> None: ...


def merge_for(ws: Workspace, settings: Settings, embedder_id: str) -> MergeResult:
    """Merge pending records into a new index version the way the settings ask
    (rows chosen by `index_by`, shard parameters)."""
    return merge_index(ws.store, ws.keys, embedder_id, cipher=ws.cipher, params=index_params(settings),
                       select=settings_selector(settings), index_by=settings.index_by)


def label_new_records(ws: Workspace, settings: Settings, embedder_id: str) -> None:
    """Label the record files not yet labelled for the current gallery version (none without a gallery)."""
    from faceid_jobs.identity.labels import relabel

    result = relabel(ws, embedder_id, settings.identity_threshold)
    if result.files:
        log.info("labelled %d record files with gallery version %d", result.files, result.gallery_version)


def count_stored_faces(ws: Workspace, plan: VideoPlan) -> int:
    """Rows stored for a video's current analysis (from Parquet footers)."""
    total = 0
    for job in plan.jobs:
        key = record_key(plan.analysis_id, plan.fingerprint, job.chunk.index)
        try:
            data = ws.store.get(key)
        except KeyError:
            continue
        total += open_parquet(data, key, ws.cipher).metadata.num_rows
    return total


def finish_video(store: Store, plan: VideoPlan, embedder_id: str, failed: list[int]) -> VideoEntry:
    """Make this analysis the video's current one in the catalog.

    Called once every chunk was attempted; the other URIs the same content
    was seen under are kept, so a moved file is still recognised.
    """
    previous = load_entry(store, plan.fingerprint)
    others = set(previous.other_uris) | {previous.uri} if previous else set()
    others.discard(plan.uri)
    entry = VideoEntry(
        fingerprint=plan.fingerprint,
        uri=plan.uri,
        fps=plan.info.fps,
        frame_count=plan.info.frame_count,
        width=plan.info.width,
        height=plan.info.height,
        analysis_id=plan.analysis_id,
        embedder_id=embedder_id,
        chunks=len(plan.jobs),
        failed_chunks=tuple(sorted(failed)),
        other_uris=tuple(sorted(others)),
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # updated_at is new on every run: compare without it, so a re-run that
    # changes nothing leaves the entry's bytes (and the index) as they are.
    if previous is not None and replace(previous, updated_at=entry.updated_at) == entry:
        return previous
    save_entry(store, entry)
    return entry


def process_sources(
    sources: list[str],
    settings: Settings,
    ws: Workspace,
    models: ModelSet,
    *,
    build: bool = True,
    observer: ProcessObserver | None = None,
) -> ProcessSummary:
    """Process every video in `sources`, then (re)build the index.

    Args:
        sources: files, folders (recursive) or glob patterns.
        settings: analysis and runtime settings.
        ws: the store (records, catalog, index) with its keys.
        models: the loaded models.
        build: build the index afterwards.
        observer: progress hooks.

    Returns:
        The run summary; `summary.failures` lists every video or chunk that
        could not be processed (the rest were).
    """
    obs = observer or ProcessObserver()
    started = time.perf_counter()
    summary = ProcessSummary()
    ws.store.check()
    videos, problems = discover_videos(sources)
    for source, reason in problems:
        _fail(summary, obs, Failure(source, None, f"{source}: {reason}"))
    obs.videos_found(len(videos))
    analysis_id = settings.analysis_fingerprint(models.ids)
    for uri in videos:
        summary.videos += 1
        try:
            with local_path(uri) as path:
                plan = plan_video(uri, path, settings, analysis_id)
                _process_video(plan, settings, ws, models, summary, obs)
        except FaceIdError as exc:
            _fail(summary, obs, Failure(uri, None, str(exc)))
        obs.video_finished(uri)
    if build:
        obs.indexing()
        summary.index = merge_for(ws, settings, models.ids["embedder"])
        summary.indexed_vectors = summary.index.vectors
    label_new_records(ws, settings, models.ids["embedder"])
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _process_video(
    plan: VideoPlan,
    settings: Settings,
    ws: Workspace,
    models: ModelSet,
    summary: ProcessSummary,
    obs: ProcessObserver,
) -> None:
    obs.video_started(plan)
    summary.video_seconds += plan.info.duration_s
    failed: list[int] = []
    for job in plan.jobs:
        result: ChunkResult | None = None
        try:
            result = run_chunk(job, models, ws, settings)
            summary.add(result, job.chunk.frames / job.fps)
        except FaceIdError as exc:
            failed.append(job.chunk.index)
            _fail(summary, obs, Failure(plan.uri, job.chunk.index, str(exc)), chunk=True)
        except Exception as exc:  # a bug must not stop the other chunks
            log.debug("chunk failed", exc_info=True)
            failed.append(job.chunk.index)
            message = f"{plan.uri}: chunk {job.chunk.index}: internal error ({type(exc).__name__}: {exc})"
            _fail(summary, obs, Failure(plan.uri, job.chunk.index, message), chunk=True)
        obs.chunk_finished(plan, job.chunk.frames, result)
    finish_video(ws.store, plan, models.ids["embedder"], failed)
    summary.faces_in_store += count_stored_faces(ws, plan)


def _fail(summary: ProcessSummary, obs: ProcessObserver, failure: Failure, chunk: bool = False) -> None:
    if chunk:
        summary.chunks_failed += 1
    summary.failures.append(failure)
    log.warning("%s", failure.error)
    obs.failure(failure)
