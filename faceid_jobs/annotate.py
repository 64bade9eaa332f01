"""Draw who is where on a video: boxes, names, similarity and liveness (I/O: reads a source, writes a video).

`annotate_video` reads a file, a camera (an index such as ``0``) or a stream
URL (anything OpenCV's FFmpeg backend opens), runs the photo path
(`faceid_jobs.photo.analyse`: detection, alignment, embedding, liveness) on
each frame (or every `detect_every`-th, the boxes held in between), labels
each face with the gallery (`GalleryMatrix`, at `identity_threshold`) and writes every frame, annotated, at the source's
frame rate and size (mp4v), so a file's output has its frame count and fps.
`draw_faces` (pure) does the drawing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceid_jobs.config import Settings
from faceid_jobs.errors import ConfigError, VideoTooLargeError
from faceid_jobs.fileio import atomic_path
from faceid_jobs.identity.matching import GalleryMatrix
from faceid_jobs.video.probe import check_frame_size

__all__ = ["AnnotateResult", "FaceLabel", "annotate_video", "draw_faces", "open_source"]

log = logging.getLogger(__name__)

_KNOWN = (60, 200, 60)  # BGR
_UNKNOWN = (0, 165, 255)
_SPOOF = (40, 40, 230)
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class FaceLabel:
    """One face to draw: box (x1, y1, x2, y2), name or None, similarity, P(live) or None."""

    bbox: tuple[float, float, float, float]
    name: str | None
    similarity: float | None
    liveness: float | None


@dataclass(frozen=True)
class AnnotateResult:
    source: str
    output: str
    frames: int
    fps: float
    width: int
    height: int
    faces: int
    identified: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def draw_faces(frame: np.ndarray, faces: list[FaceLabel], live_threshold: float = 0.5) -> np.ndarray:
    """A copy of a BGR frame with each face's box and a caption ``name sim · live p``.

    Green: identified; orange: unknown; red: P(live) below `live_threshold`.
    """
    out = frame.copy()
    h, w = out.shape[:2]
    scale = max(0.4, min(1.2, h / 900))
    thick = max(1, round(h / 400))
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face.bbox)
        spoof = face.liveness is not None and face.liveness < live_threshold
        color = _SPOOF if spoof else _KNOWN if face.name else _UNKNOWN
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        text = face.name or "unknown"
        if face.name and face.similarity is not None:
            text += f" {face.similarity:.2f}"
        if face.liveness is not None:
            text += f" | live {face.liveness:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y1 - th - base - 4 if y1 - th - base - 4 >= 0 else min(h - th - base, y2 + 2)
        left = max(0, min(x1, w - tw - 4))
        cv2.rectangle(out, (left, top), (left + tw + 4, top + th + base + 4), color, -1)
        cv2.putText(out, text, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return out


def open_source(source: str, max_pixels: int = Settings.max_video_pixels) -> tuple[cv2.VideoCapture, bool]:
    """Open a file, a camera index or a stream URL; (capture, is_file).

    Raises:
        ConfigError: the source cannot be opened.
        VideoTooLargeError: its frames are larger than `max_pixels` (none is decoded).
    """
    is_camera = source.isdigit()
    is_file = not is_camera and "://" not in source
    if is_file and not Path(source).expanduser().is_file():
        raise ConfigError(f"{source}: file not found")
    cap = cv2.VideoCapture(int(source) if is_camera else str(Path(source).expanduser()) if is_file else source)
    if not cap.isOpened():
        cap.release()
        raise ConfigError(f"{source}: cannot open the video source")
    try:
        check_frame_size(cap, source, max_pixels)
    except VideoTooLargeError:
        cap.release()
        raise
    return cap, is_file


def _labels(image: np.ndarray, models: Any, matrix: GalleryMatrix, threshold: float) -> list[FaceLabel]:
    from faceid_jobs.photo import analyse

    faces = analyse(image, models, quality=False)
    if not len(faces):
        return []
    names, sims = matrix.label(faces.embedding, threshold)
    live = faces.liveness if faces.liveness is not None else [None] * len(faces)
    return [FaceLabel(tuple(float(v) for v in faces.xyxy[i]), names[i], sims[i],
                      None if live[i] is None else round(float(live[i]), 3)) for i in range(len(faces))]


def annotate_video(
    source: str,
    output: str | os.PathLike[str],
    models: Any,
    matrix: GalleryMatrix,
    threshold: float,
    *,
    live_threshold: float = 0.5,
    max_seconds: float | None = None,
    detect_every: int = 1,
    progress: Callable[[int, int | None], None] | None = None,
    max_pixels: int = Settings.max_video_pixels,
) -> AnnotateResult:
    """Write `source` annotated to `output` (mp4v); see the module docstring.

    Args:
        source: a file path, a camera index ("0") or a stream URL.
        output: the video to write (replaced atomically at the end).
        models: a `ModelSet` (liveness drawn when loaded).
        matrix: the gallery to label faces with.
        threshold: `identity_threshold`.
        live_threshold: captions below it are drawn red.
        max_seconds: stop after this many seconds of video (streams, cameras).
        detect_every: analyse every n-th frame, drawing the last boxes in between.
        progress: called with (frames written, total frames or None) after each frame.
        max_pixels: `max_video_pixels`: larger frames are refused before decoding.

    Raises:
        ConfigError: the source cannot be opened or the output cannot be written.
        VideoTooLargeError: the source's frames are larger than `max_pixels`.
    """
    if detect_every < 1:
        raise ConfigError(f"--detect-every must be >= 1, got {detect_every}")
    started = time.perf_counter()
    cap, is_file = open_source(source, max_pixels)
    out_path = Path(output).expanduser()
    writer = None
    frames = faces = identified = 0
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or not 0 < fps <= 1000:
            fps = DEFAULT_FPS
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if is_file else None
        limit = round(max_seconds * fps) if max_seconds else None
        if total is not None and limit is not None:
            total = min(total, limit)
        current: list[FaceLabel] = []
        size = (0, 0)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        # The video shows faces: 0600 whatever the umask, never through a planted link (fileio).
        with atomic_path(out_path) as tmp:
            while limit is None or frames < limit:
                ok, image = cap.read()
                if not ok or image is None:
                    break
                if writer is None:
                    size = (image.shape[1], image.shape[0])
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    if not writer.isOpened():
                        raise ConfigError(f"{out_path}: cannot write a video there")
                if frames % detect_every == 0:
                    current = _labels(image, models, matrix, threshold)
                    faces += len(current)
                    identified += sum(1 for f in current if f.name)
                writer.write(draw_faces(image, current, live_threshold))
                frames += 1
                if progress:
                    progress(frames, total)
            if writer is None:
                raise ConfigError(f"{source}: no frame could be read")
            writer.release()
            writer = None
    except OSError as exc:
        raise ConfigError(f"{out_path}: cannot write a video there ({exc.strerror or exc})") from None
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return AnnotateResult(source, str(out_path), frames, round(fps, 3), size[0], size[1], faces, identified,
                          round(time.perf_counter() - started, 3))
