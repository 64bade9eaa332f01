"""Plan the chunk jobs of one video (I/O: fingerprints and probes the file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.config import Settings
from faceid_jobs.pipeline.chunk import ChunkJob
from faceid_jobs.video import VideoInfo, plan_chunks, probe_video, video_fingerprint

__all__ = ["VideoPlan", "plan_video"]


@dataclass(frozen=True)
class VideoPlan:
    """A probed video and its chunk jobs."""

    uri: str
    fingerprint: str
    info: VideoInfo
    analysis_id: str
    jobs: tuple[ChunkJob, ...]


def plan_video(uri: str, path: Path, settings: Settings, analysis_id: str) -> VideoPlan:
    """Fingerprint and probe a local video file and cut it into chunk jobs.

    Raises:
        VideoError: the file is missing, empty or not a decodable video.
    """
    info = probe_video(path, uri)
    fingerprint = video_fingerprint(path, settings.fingerprint)
    chunks = plan_chunks(info.frame_count, info.fps, settings.chunk_seconds)
    jobs = tuple(
        ChunkJob(
            video_uri=uri,
            path=str(path),
            fingerprint=fingerprint,
            fps=info.fps,
            frame_count=info.frame_count,
            chunk=c,
            is_last=c.index == len(chunks) - 1,
            analysis_id=analysis_id,
        )
        for c in chunks
    )
    return VideoPlan(uri, fingerprint, info, analysis_id, jobs)
