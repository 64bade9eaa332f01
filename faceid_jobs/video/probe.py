"""Open videos and read their properties (I/O: OpenCV's FFmpeg backend).

Openers are pluggable: `open_video` maps a URI to a local path through the
registered opener for its scheme, so S3 (or any other source) can hand OpenCV
a local file without the decode code knowing where it came from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2

from faceid_jobs.errors import VideoError, VideoTooLargeError
from faceid_jobs.video.source import RemoteVideo

__all__ = ["VideoInfo", "capture", "check_frame_size", "local_path", "probe_video", "register_opener", "video_name"]

# scheme -> context manager yielding a local, seekable file path for the URI
Opener = Callable[[str], AbstractContextManager[Path]]
_OPENERS: dict[str, Opener] = {}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video.

    Attributes:
        uri: where it was read from.
        fps: frames per second (> 0).
        frame_count: frames in the stream as reported by the container (> 0).
        width, height: frame size in pixels.
    """

    uri: str
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


def register_opener(scheme: str, opener: Opener) -> None:
    """Teach `local_path` a URI scheme (e.g. "s3"): `opener(uri)` yields a local Path."""
    _OPENERS[scheme] = opener


@contextmanager
def _plain_file(uri: str):
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    yield path


def local_path(uri: str) -> AbstractContextManager[Path]:
    """A context manager yielding a local file path for `uri`."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme in ("", "file"):
        return _plain_file(uri)
    try:
        return _OPENERS[scheme](uri)
    except KeyError:
        raise VideoError(f"{uri}: no reader for {scheme}:// sources") from None


def video_name(path: Path | RemoteVideo, uri: str | None = None) -> str:
    """How errors name a video: `uri` when given, else the local path or the remote video's URI."""
    return uri or (str(path) if isinstance(path, Path) else path.uri)


def capture(path: Path | RemoteVideo, uri: str | None = None, threads: int = 0) -> cv2.VideoCapture:
    """Open a local file or a `RemoteVideo` with OpenCV (rotation metadata applied),
    or raise VideoError naming it.

    A remote video is read through a Python stream of ranged reads (only the
    bytes FFmpeg asks for). `threads` > 0 caps FFmpeg's decoding threads (0:
    its default, one per core).
    """
    params = [cv2.CAP_PROP_N_THREADS, threads] if threads > 0 else []
    name = video_name(path, uri)
    if not isinstance(path, Path):
        if path.size == 0:
            raise VideoError(f"{name}: empty file")
        cap = cv2.VideoCapture(path.open(), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            if path.failure() is not None:
                raise path.failure()
            raise VideoError(f"{name}: not a readable video (unknown format or corrupt header)")
        return _display_oriented(cap)
    if not path.exists():
        raise VideoError(f"{name}: file not found")
    if path.is_dir():
        raise VideoError(f"{name}: is a directory, not a video")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{name}: permission denied")
    if path.stat().st_size == 0:
        raise VideoError(f"{name}: empty file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{name}: not a readable video (unknown format or corrupt header)")
    return _display_oriented(cap)


def _display_oriented(cap: cv2.VideoCapture) -> cv2.VideoCapture:
    """`cap` with rotation metadata (a phone's display matrix) applied while decoding.

    Every reader (process, the HTML report) then sees the frame as displayed
    and the stored boxes fit it. OpenCV's default, set here so that no build differs.
    """
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def check_frame_size(cap: cv2.VideoCapture, name: str, max_pixels: int | None) -> None:
    """Refuse an opened video whose frames (the container's size) exceed `max_pixels`, before decoding one.

    Raises:
        VideoTooLargeError: frames of more than `max_pixels` (``max_video_pixels``).
    """
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if max_pixels is not None and width * height > max_pixels:
        # A 1 MB MJPEG of 8000×8000 frames costs ~200 MB a decoded frame, several per thread.
        raise VideoTooLargeError(f"{name}: video too large ({width}×{height} frames, at most "
                                 f"{max_pixels / 1e6:g} megapixels: max_video_pixels)")


def probe_video(path: Path | RemoteVideo, uri: str | None = None, max_pixels: int | None = None) -> VideoInfo:
    """Read fps, frame count and size, checking that the first frame decodes.

    Raises:
        VideoError: missing, empty, not a video, no frames or no usable fps.
        VideoTooLargeError: frames of more than `max_pixels` (the container's
            size; no frame is decoded).
    """
    name = video_name(path, uri)
    cap = capture(path, name)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            raise VideoError(f"{name}: no usable frame rate ({fps})")
        if count <= 0 or width <= 0 or height <= 0:
            raise VideoError(f"{name}: no video frames")
        check_frame_size(cap, name, max_pixels)
        if not cap.grab():
            raise VideoError(f"{name}: first frame cannot be decoded")
        return VideoInfo(uri=name, fps=fps, frame_count=count, width=width, height=height)
    finally:
        cap.release()
