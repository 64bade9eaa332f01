"""Decode the sampled frames of one chunk (I/O: reads the video file).

Frames are decoded in order from the chunk start; frames that are not sampled
are only `grab()`bed (demuxed and decoded, never converted to BGR), which is
what makes low sample rates cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from faceid_jobs.errors import VideoError
from faceid_jobs.video.chunks import Chunk, sampled_frames
from faceid_jobs.video.probe import capture, video_name
from faceid_jobs.video.source import RemoteVideo

__all__ = ["iter_chunk_frames"]

# Containers often over-report the frame count by a few frames; a last chunk
# that ends this early is complete, not truncated.
_END_SLACK_S = 1.0


def iter_chunk_frames(
    path: Path | RemoteVideo,
    chunk: Chunk,
    fps: float,
    sample_fps: float,
    *,
    is_last: bool = False,
    uri: str | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(frame_index, bgr_frame)` for the sampled frames of `chunk`.

    Args:
        path: local video file, or a remote video read in ranges (only the
            chunk's part of it is fetched).
        chunk: the frame range to read.
        fps: the video's frame rate (for the sampling grid).
        sample_fps: frames per second to keep; 0 keeps every frame.
        is_last: whether this is the video's last chunk (allows a short end).
        uri: name used in error messages.

    Raises:
        VideoError: the file cannot be opened, or decoding stops before the
            chunk's end (truncated or corrupt data).
    """
    name = video_name(path, uri)
    wanted = sampled_frames(chunk.start, chunk.stop, fps, sample_fps)
    if len(wanted) == 0:
        return
    # One decoding thread: decoding runs ahead of inference in its own thread
    # (pipeline/prefetch.py) and is ~10x faster than it, so FFmpeg's frame
    # threads would only compete with onnxruntime for the cores (measured on
    # the 720p clip: 0.88 CPU s single-threaded vs 1.0-1.1 with two threads).
    cap = capture(path, name, threads=1)
    try:
        if chunk.start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, chunk.start)
        last_wanted = int(wanted[-1])
        want = set(wanted.tolist())
        frame = None
        for idx in range(chunk.start, last_wanted + 1):
            if not cap.grab():
                failure = None if isinstance(path, Path) else path.failure()
                if failure is not None:
                    raise failure  # a transport error, not corrupt data: the step may retry
                missing = chunk.stop - idx
                if is_last and missing <= max(2, int(_END_SLACK_S * fps)):
                    return
                raise VideoError(
                    f"{name}: decoding stopped at frame {idx} of {chunk.stop} "
                    "(truncated or corrupt video data)"
                )
            if idx in want:
                ok, frame = cap.retrieve(frame)
                if not ok or frame is None:
                    raise VideoError(f"{name}: frame {idx} cannot be decoded (corrupt data)")
                yield idx, frame
                # The consumer may keep the array (e.g. queued for batching):
                # never let OpenCV decode into it again.
                frame = None
    finally:
        cap.release()
