"""Face quality in [0, 1] from size, detection score, sharpness and pose (pure).

Used to pick the few faces of a track worth indexing and to gate indexing
with `min_quality`. Four terms, each in [0, 1]:

- **size** = ``min(1, shorter box side / 112)``: a face as large as the
  embedder's 112-px input scores 1; smaller faces are upsampled and lose
  detail in proportion.
- **det** = the detector's score (SCRFD: confidence the box is a face).
- **sharpness** = ``v / (v + 50)`` where ``v`` is the variance of the
  Laplacian of the grey aligned 112×112 crop: a crop with ``v = 50`` (soft)
  scores 0.5, ``v = 150`` (crisp) 0.75; motion blur and defocus lower ``v``.
- **frontal** = ``1 / sqrt(1 + yaw² + pitch²)`` from the five landmarks, in
  the frame of the eye line (so in-plane roll, which alignment removes, does
  not count): ``yaw`` is the nose's offset from the eye midpoint along the
  eye line in half eye distances (≈ tan of the head's yaw: 0 frontal, 1 at
  45°, large in profile); ``pitch`` is 4 × the offset of the nose's height
  between the eye line and the mouth line from 0.5 (the ArcFace template
  has 0.495). A frontal face scores 1, a 45° turn about 0.7, a profile near
  0; landmarks that fold over (eyes on top of each other, mouth above the
  eyes) score 0.

``quality`` is the geometric mean of the four, so any one term near zero
(a tiny, blurred, doubtful or profile face) pulls it near zero.

Example:
    >>> import numpy as np
    >>> from faceid_jobs.models.align import ARCFACE_TEMPLATE
    >>> float(frontalness(ARCFACE_TEMPLATE[None])[0]) > 0.99
    True
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FULL_SIZE_PX", "SHARPNESS_HALF", "face_quality", "frontalness", "sharpness", "size_score"]

# Shorter box side at which the size term reaches 1 (the embedder's input side).
FULL_SIZE_PX = 112.0
# Laplacian variance at which the sharpness term is 0.5.
SHARPNESS_HALF = 50.0
# Nose height between eye line (0) and mouth line (1) on a frontal face.
_NOSE_HEIGHT = 0.5
_PITCH_GAIN = 4.0


def sharpness(crops: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each crop, converted to grey.

    Args:
        crops: (n, H, W, 3) uint8 BGR (aligned faces) or (n, H, W) grey.

    Returns:
        (n,) float32, ≥ 0 (0 for a flat crop).
    """
    crops = np.asarray(crops)
    out = np.zeros(len(crops), np.float32)
    for i, crop in enumerate(crops):
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        out[i] = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return out


def size_score(xyxy: np.ndarray) -> np.ndarray:
    """``min(1, shorter box side / FULL_SIZE_PX)`` for (n, 4) boxes, (n,) float32."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return np.clip(side / FULL_SIZE_PX, 0.0, 1.0).astype(np.float32)


def frontalness(kps: np.ndarray) -> np.ndarray:
    """How squarely each face looks at the camera, from its 5 landmarks.

    Args:
        kps: (n, 5, 2) landmarks: left eye, right eye, nose, left and right
            mouth corner (image left/right).

    Returns:
        (n,) float32 in [0, 1]: ``1 / sqrt(1 + yaw² + pitch²)`` (see the
        module docstring); 0 for degenerate landmarks.
    """
    k = np.asarray(kps, np.float64).reshape(-1, 5, 2)
    left, right, nose = k[:, 0], k[:, 1], k[:, 2]
    mouth = (k[:, 3] + k[:, 4]) / 2
    mid = (left + right) / 2
    eye_vec = right - left
    eye_dist = np.linalg.norm(eye_vec, axis=1)
    # Scale of the face from all points, to tell folded-over eyes from a tiny face.
    spread = np.linalg.norm(k - k.mean(axis=1, keepdims=True), axis=2).max(axis=1)
    ok = eye_dist > 1e-3 * np.maximum(spread, 1e-6)
    u = eye_vec / np.where(ok, eye_dist, 1.0)[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # points from the eyes down to the mouth
    nose_rel, mouth_rel = nose - mid, mouth - mid
    depth = np.einsum("ij,ij->i", mouth_rel, v)
    ok &= depth > 1e-3 * np.maximum(spread, 1e-6)
    yaw = np.einsum("ij,ij->i", nose_rel, u) / np.where(ok, eye_dist / 2, 1.0)
    pitch = _PITCH_GAIN * (np.einsum("ij,ij->i", nose_rel, v) / np.where(ok, depth, 1.0) - _NOSE_HEIGHT)
    score = 1.0 / np.sqrt(1.0 + yaw**2 + pitch**2)
    return np.where(ok, score, 0.0).astype(np.float32)


def face_quality(
    crops: np.ndarray,
    xyxy: np.ndarray,
    det_score: np.ndarray,
    kps: np.ndarray,
) -> np.ndarray:
    """Quality of each face: geometric mean of size, det, sharpness and frontal.

    Args:
        crops: (n, 112, 112, 3) uint8 aligned crops (`align_faces`).
        xyxy: (n, 4) boxes in frame pixels.
        det_score: (n,) detector scores.
        kps: (n, 5, 2) landmarks in frame pixels.

    Returns:
        (n,) float32 in [0, 1].

    Example:
        >>> import numpy as np
        >>> from faceid_jobs.models.align import ARCFACE_TEMPLATE
        >>> crops = np.zeros((1, 112, 112, 3), np.uint8)
        >>> q = face_quality(crops, np.array([[0, 0, 112, 112]]), np.array([0.9]), ARCFACE_TEMPLATE[None])
        >>> float(q[0])  # a flat crop has no sharpness
        0.0
    """
    n = len(xyxy)
    if not n:
        return np.zeros((0,), np.float32)
    v = sharpness(crops).astype(np.float64)
    terms = np.stack([
        size_score(xyxy).astype(np.float64),
        np.clip(np.asarray(det_score, np.float64).reshape(n), 0.0, 1.0),
        v / (v + SHARPNESS_HALF),
        frontalness(kps).astype(np.float64),
    ])
    return np.clip(np.prod(terms, axis=0) ** 0.25, 0.0, 1.0).astype(np.float32)
