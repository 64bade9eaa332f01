"""Plan the chunk jobs of one video (I/O: fingerprints and probes the file or remote object)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.config import Settings
from faceid_jobs.pipeline.chunk import ChunkJob
from faceid_jobs.video import VideoInfo, plan_chunks, probe_video, video_fingerprint
from faceid_jobs.video.fingerprint import stream_fingerprint
from faceid_jobs.video.source import RemoteVideo, SourceObject

__all__ = ["VideoPlan", "plan_video"]


@dataclass(frozen=True)
class VideoPlan:
    """A probed video and its chunk jobs."""

    uri: str
    fingerprint: str
    info: VideoInfo
    analysis_id: str
    jobs: tuple[ChunkJob, ...]
    source: SourceObject | None = None  # what the listing said, before the video was read


def plan_video(uri: str, path: Path | RemoteVideo, settings: Settings, analysis_id: str,
               source: SourceObject | None = None) -> VideoPlan:
    """Fingerprint and probe a local video file or a remote video (read in ranges, never
    whole) and cut it into chunk jobs.

    Raises:
        VideoError: the file is missing, empty or not a decodable video.
    """
    if isinstance(path, Path):
        info = probe_video(path, uri, settings.max_video_pixels)
        fingerprint = video_fingerprint(path, settings.fingerprint)
    else:
        # Fingerprint first: its ranges (first and last MiB) are cached and
        # then serve the probe's reads of the container header.
        fingerprint = stream_fingerprint(path.open(readahead=False), path.size, settings.fingerprint)
        info = probe_video(path, uri, settings.max_video_pixels)
    chunks = plan_chunks(info.frame_count, info.fps, settings.chunk_seconds)
    jobs = tuple(
        ChunkJob(
            video_uri=uri,
            path=str(path) if isinstance(path, Path) else uri,
            fingerprint=fingerprint,
            fps=info.fps,
            frame_count=info.frame_count,
            chunk=c,
            is_last=c.index == len(chunks) - 1,
            analysis_id=analysis_id,
            source=source,
        )
        for c in chunks
    )
    return VideoPlan(uri, fingerprint, info, analysis_id, jobs, source)
