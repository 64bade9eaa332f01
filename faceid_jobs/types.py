"""Typed result objects passed between pipeline stages (pure, no I/O).

`Faces` is a set of face rows as parallel numpy arrays, in the spirit of
supervision's `Detections`: every stage takes a `Faces` and returns a new one
(detect creates rows, embed fills `embedding`, liveness fills `liveness`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Faces", "box_iou"]

_OPTIONAL = ("embedding", "liveness", "quality", "track_id")


@dataclass(frozen=True)
class Faces:
    """Faces found in one or more frames.

    Attributes:
        xyxy: (n, 4) float32 boxes in original image pixels (x1, y1, x2, y2).
        score: (n,) float32 detection scores.
        kps: (n, 5, 2) float32 landmarks: left eye, right eye, nose, left and
            right mouth corner (image left/right), in original image pixels.
        frame_idx: (n,) int64 index of the frame each face came from (0 for photos).
        embedding: optional (n, D) float32, L2-normalised.
        liveness: optional (n,) float32 P(live) in [0, 1].
        quality: optional (n,) float32 in [0, 1].
        track_id: optional (n,) int64.
        metadata: free-form facts about the whole set (source URI, model ids).

    Example:
        >>> f = Faces.empty()
        >>> len(f)
        0
    """

    xyxy: np.ndarray
    score: np.ndarray
    kps: np.ndarray
    frame_idx: np.ndarray
    embedding: np.ndarray | None = None
    liveness: np.ndarray | None = None
    quality: np.ndarray | None = None
    track_id: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        _check(self.xyxy, "xyxy", (n, 4))
        _check(self.score, "score", (n,))
        _check(self.kps, "kps", (n, 5, 2))
        _check(self.frame_idx, "frame_idx", (n,))
        if self.embedding is not None and (self.embedding.ndim != 2 or len(self.embedding) != n):
            raise ValueError(f"embedding must be (n={n}, D), got {self.embedding.shape}")
        for name in ("liveness", "quality", "track_id"):
            value = getattr(self, name)
            if value is not None:
                _check(value, name, (n,))

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> Faces:
        """A set with no faces (optionally with an empty (0, D) embedding)."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            score=np.zeros((0,), np.float32),
            kps=np.zeros((0, 5, 2), np.float32),
            frame_idx=np.zeros((0,), np.int64),
            embedding=None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def is_empty(self) -> bool:
        return len(self) == 0

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Faces:
        """Rows selected by an int, slice, index list or boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        sel = np.asarray(index) if not isinstance(index, slice) else index

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[sel]

        return Faces(
            xyxy=self.xyxy[sel],
            score=self.score[sel],
            kps=self.kps[sel],
            frame_idx=self.frame_idx[sel],
            embedding=pick(self.embedding),
            liveness=pick(self.liveness),
            quality=pick(self.quality),
            track_id=pick(self.track_id),
            metadata=dict(self.metadata),
        )

    def with_fields(self, **values: Any) -> Faces:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **values)

    @property
    def area(self) -> np.ndarray:
        """(n,) float32 box areas in pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return (wh[:, 0] * wh[:, 1]).astype(np.float32)

    @classmethod
    def merge(cls, parts: Sequence[Faces]) -> Faces:
        """Concatenate sets of faces.

        Raises:
            ValueError: non-empty parts disagree on which optional fields they
                carry (one has embeddings, another not): merging them would
                silently drop a column. Empty parts never disagree.
        """
        parts = [p for p in parts if p is not None]
        if not parts:
            return cls.empty()
        metadata: dict[str, Any] = {}
        for p in parts:
            metadata.update(p.metadata)
        optional: dict[str, np.ndarray | None] = {}
        nonempty = [p for p in parts if len(p)] or parts[:1]
        for name in _OPTIONAL:
            values = [getattr(p, name) for p in nonempty]
            missing = sum(v is None for v in values)
            if 0 < missing < len(values):
                raise ValueError(f"cannot merge faces: {missing} of {len(values)} parts have no {name}")
            optional[name] = None if missing else np.concatenate(values)
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]).astype(np.float32, copy=False),
            score=np.concatenate([p.score for p in parts]).astype(np.float32, copy=False),
            kps=np.concatenate([p.kps for p in parts]).astype(np.float32, copy=False),
            frame_idx=np.concatenate([p.frame_idx for p in parts]).astype(np.int64, copy=False),
            metadata=metadata,
            **optional,
        )


def _check(a: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (m, 4) and (n, 4) xyxy boxes, (m, n) float64.

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]])).round(3).tolist()
        [[0.333]]
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
