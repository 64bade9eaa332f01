"""What a `process` run did: failures, the run summary and the collector that builds it (pure).

The orchestration loop (`faceid_jobs.pipeline.process.run_archive`) feeds a
`SummaryCollector` as chunks settle, in the spirit of Iceberg's
`SnapshotSummaryCollector`: callers add facts, `build()` returns the summary.
The same collector serves the in-process run and the Prefect flow, so both
report the same numbers.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceid_jobs.errors import FaceIdError, StoreError, StoreTransientError

if TYPE_CHECKING:
    from faceid_jobs.index import MergeResult
    from faceid_jobs.pipeline.chunk import ChunkJob, ChunkResult
    from faceid_jobs.pipeline.plan import VideoPlan
    from faceid_jobs.pipeline.sources import SkippedFile
    from faceid_jobs.storage.catalog import VideoEntry

__all__ = [
    "TRANSIENT_ERRORS",
    "Failure",
    "ProcessSummary",
    "SummaryCollector",
    "VideoRow",
    "describe_failure",
    "is_transient",
]

# Errors a wait may cure, and only those (an allow-list): a dropped, reset or refused connection,
# a timeout, and the stores' `StoreTransientError` (S3 throttling, a 5xx, racing writers). A full
# disk, a quota, a read-only filesystem, a refused permission or credential, a missing bucket, a
# local I/O error, memory exhaustion, corrupt input, bad settings and integrity failures fail at once.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, StoreError, TimeoutError)
_NETWORK_ERRNOS = frozenset({errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED,
                             errno.EPIPE, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH})


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may cure `exc`: a connection error, a timeout or a `StoreTransientError`."""
    if isinstance(exc, StoreTransientError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


@dataclass(frozen=True)
class Failure:
    """A video (chunk None) or chunk that could not be processed; `bad_file` when
    the video itself is unreadable (a `VideoError`: not a video, corrupt, truncated)."""

    video: str
    chunk: int | None
    error: str
    bad_file: bool = False


@dataclass
class VideoRow:
    """One video's line of the run report."""

    video: str
    chunks: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    faces: int = 0
    faces_in_store: int = 0
    video_seconds: float = 0.0
    catalog: str = "-"
    status: str = "ok"
    error: str = ""


@dataclass
class ProcessSummary:
    """What a `process` run did; `to_json()` is the CLI's `--json` output."""

    videos: int = 0
    videos_unchanged: int = 0
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
    rows: list[VideoRow] = field(default_factory=list)
    orchestrator: str = "local"
    flow_run_id: str | None = None
    interrupted: bool = False  # stopped on request (a signal): what was stored stays, a re-run resumes
    copies: dict[str, str] = field(default_factory=dict)  # video → the run's video with the same content
    # Files the folder walk left out (photos, other files, --exclude), and whether
    # unreadable videos fail the run (the fail_on_bad_files setting).
    skipped_files: list[SkippedFile] = field(default_factory=list)
    fail_on_bad_files: bool = True

    @property
    def bad_files(self) -> list[str]:
        """Videos that failed as unreadable files, once each, in failure order."""
        return list(dict.fromkeys(f.video for f in self.failures if f.bad_file))

    @property
    def ok(self) -> bool:
        """No failure, or (with fail_on_bad_files false) only unreadable files."""
        if self.fail_on_bad_files:
            return not self.failures
        return all(f.bad_file for f in self.failures)

    @property
    def speed(self) -> float:
        """Video seconds analysed (not skipped) per wall-clock second."""
        return self.processed_video_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "videos_unchanged": self.videos_unchanged,
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
            "bad_files": self.bad_files,
            "skipped_files": [asdict(f) for f in self.skipped_files],
            "ok": self.ok,
            "index": asdict(self.index) if self.index else None,
            "orchestrator": self.orchestrator,
            "flow_run_id": self.flow_run_id,
            "interrupted": self.interrupted,
            "copies": [{"video": video, "same_as": first} for video, first in self.copies.items()],
        }

    def failure_message(self) -> str:
        """One line naming what failed, for a failed run's state message."""
        videos = sorted({f.video for f in self.failures if f.chunk is None})
        chunks = [f"{Path(f.video).name}#{f.chunk}" for f in self.failures if f.chunk is not None]
        parts = []
        if chunks:
            parts.append(f"{len(chunks)} chunk(s) failed ({_first(chunks)})")
        if videos:
            parts.append(f"{len(videos)} video(s)/source(s) failed ({_first([Path(v).name for v in videos])})")
        return "; ".join(parts) + f"; first: {self.failures[0].error}"


def _first(names: list[str], most: int = 10) -> str:
    return ", ".join(names[:most]) + (", …" if len(names) > most else "")


class SummaryCollector:
    """Adds up a run as its steps settle; `build()` gives the `ProcessSummary`."""

    def __init__(self, orchestrator: str = "local", fail_on_bad_files: bool = True) -> None:
        self._summary = ProcessSummary(orchestrator=orchestrator, fail_on_bad_files=fail_on_bad_files)
        self._rows: dict[str, VideoRow] = {}

    def row(self, uri: str) -> VideoRow:
        if uri not in self._rows:
            self._rows[uri] = VideoRow(uri)
            self._summary.videos += 1
        return self._rows[uri]

    def add_video(self, plan: VideoPlan) -> None:
        row = self.row(plan.uri)
        row.chunks = len(plan.jobs)
        row.video_seconds = round(plan.info.duration_s, 3)
        self._summary.video_seconds += plan.info.duration_s

    def add_chunk(self, job: ChunkJob, result: ChunkResult) -> None:
        row = self.row(job.video_uri)
        if result.status == "skipped":
            self._summary.chunks_skipped += 1
            row.skipped += 1
            return
        self._summary.chunks_done += 1
        self._summary.frames_sampled += result.frames_sampled
        self._summary.faces += result.faces
        self._summary.processed_video_seconds += job.chunk.frames / job.fps
        row.done += 1
        row.faces += result.faces

    def add_failure(self, failure: Failure, *, video: str | None = None) -> None:
        """A failed source, video or chunk; `video` names the report row it belongs to."""
        self._summary.failures.append(failure)
        if failure.chunk is not None:
            self._summary.chunks_failed += 1
        if video is not None:
            row = self.row(video)
            row.status = "failed"
            row.error = row.error or failure.error
            if failure.chunk is not None:
                row.failed += 1

    def add_skipped(self, skipped: Sequence[SkippedFile]) -> None:
        """Files the source walk found and left out."""
        self._summary.skipped_files.extend(skipped)

    def add_unchanged(self, uri: str, entry: VideoEntry) -> None:
        """A video skipped unread: unchanged since its analysis, which is complete."""
        row = self.row(uri)
        row.chunks = row.skipped = entry.chunks
        row.video_seconds = round(entry.duration_s, 3)
        row.faces_in_store = entry.faces or 0
        row.catalog = "unchanged"
        self._summary.videos_unchanged += 1
        self._summary.chunks_skipped += entry.chunks
        self._summary.video_seconds += entry.duration_s
        self._summary.faces_in_store += entry.faces or 0

    def add_copy(self, uri: str, same_as: str, *, unread: bool = False) -> None:
        """A video whose content is another of the run's videos (a renamed copy): not analysed
        again, and its faces are that video's, counted once; `unread`: skipped unchanged."""
        row = self.row(uri)
        row.catalog = f"same as {same_as}"
        self._summary.copies[uri] = same_as
        self._summary.videos_unchanged += unread

    def add_catalogued(self, uri: str, changed: bool, faces_in_store: int) -> None:
        row = self.row(uri)
        row.faces_in_store = faces_in_store
        row.catalog = "updated" if changed else "unchanged"
        self._summary.faces_in_store += faces_in_store

    @property
    def chunks_done(self) -> int:
        return self._summary.chunks_done

    def interrupt(self) -> None:
        """The run stopped on request; the chunks added so far are all it did."""
        self._summary.interrupted = True

    def set_index(self, result: MergeResult) -> None:
        self._summary.index = result
        self._summary.indexed_vectors = result.vectors

    def build(self, wall_seconds: float, flow_run_id: str | None = None) -> ProcessSummary:
        self._summary.wall_seconds = wall_seconds
        self._summary.flow_run_id = flow_run_id
        self._summary.rows = list(self._rows.values())
        return self._summary


def describe_failure(exc: BaseException | None, video: str, chunk: int | None = None) -> str:
    """One line naming the video (and chunk) and the problem."""
    where = video if chunk is None else f"{video}: chunk {chunk}"
    if isinstance(exc, FaceIdError):
        text = str(exc)
        return text if video in text else f"{where}: {text}"
    if isinstance(exc, TRANSIENT_ERRORS) and not is_transient(exc):
        return f"{where}: {type(exc).__name__}: {exc}"
    if isinstance(exc, TRANSIENT_ERRORS):
        return f"{where}: {type(exc).__name__}: {exc} (retries exhausted)"
    if exc is None:
        return f"{where}: failed (no exception recorded)"
    return f"{where}: internal error ({type(exc).__name__}: {exc})"
