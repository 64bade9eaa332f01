"""Quarter-turn rotation of decoded frames and of face geometry back to the frame (pure).

Rotation metadata in the container (a phone's display matrix) is applied by
OpenCV's FFmpeg backend as it decodes (`CAP_PROP_ORIENTATION_AUTO`, on by
default and set explicitly in `video.probe.capture`), so a "decoded frame" is
already the frame as it should be displayed. The `rotate` setting turns such
a frame further, for footage whose pixels are sideways without saying so (a
camera mounted on its side). Detection runs on the turned frame; boxes and
landmarks are mapped back to the decoded frame (`unrotate_points`,
`unrotate_faces`) before they are stored, so a record's bbox always crops
the face from the frame any reader of the video decodes (the HTML report,
`annotate`).
"""

from __future__ import annotations

import cv2
import numpy as np

from faceid_jobs.types import Faces

__all__ = ["ROTATIONS", "rotate_frame", "unrotate_faces", "unrotate_points", "unturned_size"]

# Degrees clockwise a decoded frame is turned before analysis.
ROTATIONS = (0, 90, 180, 270)
_CV2_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate_frame(image: np.ndarray, degrees: int) -> np.ndarray:
    """`image` turned `degrees` clockwise (0 returns it unchanged, not copied).

    Example:
        >>> rotate_frame(np.zeros((2, 3, 3), np.uint8), 90).shape
        (3, 2, 3)
    """
    if degrees == 0:
        return image
    return cv2.rotate(image, _CV2_CODES[degrees])


def unturned_size(turned_shape: tuple[int, ...], degrees: int) -> tuple[int, int]:
    """(width, height) of the decoded frame whose turn by `degrees` has shape `turned_shape` (h, w, …)."""
    h, w = turned_shape[:2]
    return (h, w) if degrees in (90, 270) else (w, h)


def unrotate_points(xy: np.ndarray, degrees: int, width: int, height: int) -> np.ndarray:
    """Points (…, 2) of a frame turned `degrees` clockwise, in the unturned frame of `width`×`height`.

    Coordinates are continuous pixel coordinates (a pixel's centre at +0.5),
    so the mapping is exact for the pixels `rotate_frame` moves.

    Example:
        >>> unrotate_points(np.array([[0.5, 1.5]]), 90, width=3, height=2).tolist()
        [[1.5, 1.5]]
    """
    x, y = xy[..., 0], xy[..., 1]
    if degrees == 0:
        return xy
    if degrees == 90:  # turned clockwise: a turned (x', y') came from (y', H - x')
        out = (y, height - x)
    elif degrees == 180:
        out = (width - x, height - y)
    elif degrees == 270:
        out = (width - y, x)
    else:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {degrees}")
    return np.stack(out, axis=-1).astype(xy.dtype, copy=False)


def unrotate_faces(faces: Faces, degrees: int, width: int, height: int) -> Faces:
    """Boxes and landmarks of faces found in a frame turned `degrees`, in the unturned frame.

    A box's corners are mapped and re-ordered (x1 < x2, y1 < y2); landmarks
    keep their meaning (left eye stays the left eye of the face).
    """
    if degrees == 0 or not len(faces):
        return faces
    corners = unrotate_points(faces.xyxy.reshape(-1, 2, 2), degrees, width, height)
    xyxy = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)
    kps = unrotate_points(faces.kps, degrees, width, height).astype(np.float32)
    return faces.with_fields(xyxy=xyxy, kps=kps)
