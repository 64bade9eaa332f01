"""Split a video into fixed-length chunks and pick the frames to analyse (pure).

Sampling uses one grid for the whole video (frame f is taken when it is the
first frame of a new 1/sample_fps interval), so which frames are analysed
does not depend on where chunk boundaries fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Chunk", "plan_chunks", "sampled_frames", "timestamp_s"]


@dataclass(frozen=True)
class Chunk:
    """Frames [start, stop) of one video, processed as one unit of work."""

    index: int
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def plan_chunks(frame_count: int, fps: float, chunk_seconds: float) -> list[Chunk]:
    """Cut `frame_count` frames into chunks of about `chunk_seconds` each.

    Example:
        >>> [(c.start, c.stop) for c in plan_chunks(100, 10.0, 4.0)]
        [(0, 40), (40, 80), (80, 100)]
    """
    if frame_count <= 0:
        return []
    per_chunk = max(1, round(chunk_seconds * fps))
    n = math.ceil(frame_count / per_chunk)
    return [
        Chunk(i, i * per_chunk, min(frame_count, (i + 1) * per_chunk)) for i in range(n)
    ]


def sampled_frames(start: int, stop: int, fps: float, sample_fps: float) -> np.ndarray:
    """Frame indices in [start, stop) to analyse; every frame when sample_fps is 0
    or not below fps.

    Example:
        >>> sampled_frames(0, 10, 10.0, 2.0).tolist()
        [0, 5]
    """
    frames = np.arange(start, stop, dtype=np.int64)
    if sample_fps <= 0 or sample_fps >= fps:
        return frames
    # Bucket of each frame on the sampling grid; keep the first frame per bucket.
    ratio = sample_fps / fps
    bucket = np.floor(frames * ratio + 1e-9).astype(np.int64)
    prev = np.floor((frames - 1) * ratio + 1e-9).astype(np.int64)
    keep = (bucket != prev) | (frames == 0)
    return frames[keep]


def timestamp_s(frame_idx: int | np.ndarray, fps: float) -> float | np.ndarray:
    """Presentation time of a frame, from its index and the constant frame rate."""
    return frame_idx / fps
