"""5-point face alignment onto the standard ArcFace 112×112 template (pure).

A least-squares similarity transform (rotation, uniform scale, translation;
Umeyama 1991, closed form, so deterministic) maps the five detected landmarks
onto the template; the face is then warped with `cv2.warpAffine`.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ARCFACE_TEMPLATE", "align_faces", "similarity_transform", "template"]

# Left eye, right eye, nose tip, left and right mouth corner (image left/right)
# in a 112×112 crop: the template every InsightFace recogniser was trained on.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def template(size: int = 112) -> np.ndarray:
    """The ArcFace template scaled to a `size`×`size` crop.

    Returns:
        (5, 2) float32 landmark positions in crop pixels.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return (ARCFACE_TEMPLATE * (size / 112.0)).astype(np.float32)


def similarity_transform(kps: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity transform from landmarks to the template.

    Args:
        kps: (5, 2) source landmarks (any float dtype), image pixels.
        dst: (5, 2) target points; default the 112×112 ArcFace template.

    Returns:
        (2, 3) float32 matrix M with ``dst ≈ M[:, :2] @ src + M[:, 2]``, for
        `cv2.warpAffine`. Degenerate input (all points equal) gives a pure
        translation onto the template's centroid.

    Example:
        >>> m = similarity_transform(ARCFACE_TEMPLATE)
        >>> np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)
        True
    """
    src = np.asarray(kps, dtype=np.float64)
    dst64 = np.asarray(ARCFACE_TEMPLATE if dst is None else dst, dtype=np.float64)
    if src.shape != dst64.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(f"kps must be (k, 2) like dst {dst64.shape}, got {src.shape}")
    src_mean = src.mean(axis=0)
    dst_mean = dst64.mean(axis=0)
    src_c = src - src_mean
    dst_c = dst64 - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-12:
        m = np.zeros((2, 3), np.float32)
        m[:, 2] = dst_mean - src_mean
        m[0, 0] = m[1, 1] = 1.0
        return m
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # no reflections
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_var
    m = np.empty((2, 3), np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - m[:, :2] @ src_mean
    return m.astype(np.float32)


def align_faces(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """Cut out aligned face crops.

    Args:
        image: (H, W, 3) uint8 image (BGR stays BGR).
        kps: (n, 5, 2) landmarks in image pixels (e.g. `Faces.kps`).
        size: crop side; the template is scaled by size / 112.

    Returns:
        (n, size, size, 3) uint8 crops; pixels from outside the image are 0.

    Example:
        >>> img = np.zeros((200, 200, 3), np.uint8)
        >>> align_faces(img, ARCFACE_TEMPLATE[None]).shape
        (1, 112, 112, 3)
    """
    kps = np.asarray(kps, dtype=np.float32)
    if kps.ndim != 3 or kps.shape[1:] != (5, 2):
        raise ValueError(f"kps must be (n, 5, 2), got {kps.shape}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    dst = template(size)
    out = np.zeros((len(kps), size, size, 3), np.uint8)
    for i, points in enumerate(kps):
        m = similarity_transform(points, dst)
        cv2.warpAffine(
            image,
            m,
            (size, size),
            dst=out[i],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
    return out
