"""Which faces need a fresh embedding and liveness score, and which may reuse one (pure).

Between neighbouring sampled frames (40 ms apart at every frame, 250 ms at
4 fps) most faces are nearly unchanged, and embedding (ArcFace) and liveness
(two MiniFASNets) are most of the cost of a chunk. A face that *continues* a
face of the previous sampled frame may therefore take the embedding and
liveness of that face's **anchor**, the last face of the run that was
embedded fresh, if every gate passes:

- **age**: the anchor is at most `ReuseRules.max_age_s` seconds older;
- **continuation**: its box overlaps the previous face's box (IoU ≥
  `min_iou`; pairs are chosen by `linear_sum_assignment` on IoU, so two
  neighbours are never swapped);
- **size**: its box side is within `max_size_change` of the anchor's (a zoom
  changes the resolution the embedder sees);
- **look**: its aligned crop still looks like the anchor's: normalised
  cross-correlation of small band-pass thumbnails (`thumbnails`) ≥
  `min_similarity`. On the Friends clip the same face in neighbouring
  frames scores 0.97 (median), a cut that puts another person in the same
  place 0.05–0.15; talking, turning and blinking drop it too, which is what
  moves the embedding, so they force a fresh one;
- **quality** (`faceid_jobs.pipeline.quality`): not better than the anchor's by more
  than `quality_margin`. The index keeps the best-quality faces of a track
  and must store their own vectors, so a sharper or more frontal view is
  embedded itself.

Otherwise the face is embedded fresh and becomes the anchor of its run.
`ReusePlanner` only decides, frame by frame, before any embedding exists: it
answers with the ordinal (in the chunk's order of faces) of the face whose
outputs each face takes, its own ordinal when fresh, and the caller fills in
the copies once the anchors' embeddings are computed. It keeps only the
previous frame's boxes and its anchors' thumbnails, so memory stays flat.

Example:
    >>> import numpy as np
    >>> planner = ReusePlanner(ReuseRules(max_age_s=0.5))
    >>> face = np.full((1, 112, 112, 3), 0, np.uint8); face[0, 40:70, 30:80] = 200
    >>> frame = lambda t: FrameFaces(t, np.array([[0, 0, 100, 100]], np.float32), thumbnails(face),
    ...                              np.array([0.8], np.float32))
    >>> [planner.plan(frame(t)).source.tolist() for t in (0.0, 0.04, 0.6)]
    [[0], [0], [2]]
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from faceid_jobs.pipeline.tracking import box_iou

__all__ = [
    "THUMB_MARGIN", "THUMB_SIDE", "THUMB_SIGMA", "Anchor", "FrameFaces", "ReusePlan", "ReusePlanner", "ReuseRules",
    "continuations", "fresh_rows", "may_reuse", "thumbnails",
]

# Thumbnails: the centre of the aligned crop (the face, little background),
# THUMB_MARGIN px cut from each side of 112, shrunk to THUMB_SIDE², minus its
# Gaussian blur of THUMB_SIGMA px (band-pass).
THUMB_MARGIN = 8
THUMB_SIDE = 24
THUMB_SIGMA = 2.0
_BLOCKED = 1e6


@dataclass(frozen=True)
class ReuseRules:
    """Gates a face must pass to reuse its anchor's embedding and liveness.

    The defaults were chosen on the Friends clip at every frame (632 frames,
    1,360 faces): 43% of faces embedded, reused embeddings at cosine ≥ 0.82
    (median 0.99) of the face's own, same tracks and search results. With
    ``min_similarity`` 0.85 or plain grey thumbnails, reused embeddings fell
    to cosine 0.5–0.6 on talking faces.

    Attributes:
        max_age_s: oldest anchor (seconds before this face) that may be
            reused; 0 disables reuse (every face is embedded).
        min_iou: least box overlap with the previous frame's face.
        max_size_change: largest relative change of the box side
            (√area) against the anchor's.
        min_similarity: least normalised cross-correlation of the
            thumbnails of the aligned crop and of the anchor's crop.
        quality_margin: a face whose quality exceeds the anchor's by more
            than this is embedded itself.
    """

    max_age_s: float
    min_iou: float = 0.6
    max_size_change: float = 0.15
    min_similarity: float = 0.9
    quality_margin: float = 0.05

    def __post_init__(self) -> None:
        if self.max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {self.max_age_s}")


@dataclass(frozen=True)
class FrameFaces:
    """What the gates need of one sampled frame's faces.

    Attributes:
        time_s: the frame's time in seconds.
        xyxy: (n, 4) boxes in frame pixels.
        thumbs: (n, k) float32 thumbnails of the aligned crops (`thumbnails`).
        quality: (n,) float32 face quality.
    """

    time_s: float
    xyxy: np.ndarray
    thumbs: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.xyxy)


@dataclass(frozen=True)
class ReusePlan:
    """The decision for one frame's faces.

    Attributes:
        source: (n,) int64, for each face the ordinal (in the chunk's order
            of faces) of the face whose embedding and liveness it takes: its
            own ordinal when it is embedded fresh.
        fresh: (n,) bool, the faces to embed and score.
    """

    source: np.ndarray
    fresh: np.ndarray


@dataclass(frozen=True)
class Anchor:
    """The face (embedded fresh) whose outputs a run of faces shares.

    Attributes:
        ordinal: its place in the chunk's order of faces.
        time_s: its frame's time.
        thumb: its `thumbnails` row.
        quality: its quality.
        side: its box's √area in pixels.
    """

    ordinal: int
    time_s: float
    thumb: np.ndarray
    quality: float
    side: float


def thumbnails(crops: np.ndarray) -> np.ndarray:
    """Band-pass grey thumbnails of aligned crops, zero-mean and unit-norm, (n, THUMB_SIDE²) float32.

    The dot product of two thumbnails is their normalised cross-correlation
    (1 for the same picture, unchanged by brightness and contrast). The
    centre of the crop is shrunk to THUMB_SIDE² and its blur (σ = THUMB_SIGMA
    px) subtracted: what is left is the shape of eyes, brows, nose and mouth,
    what the embedder looks at. Plain grey thumbnails were measured to stay
    ≥ 0.9 similar while a talking face's ArcFace embedding drifted to cosine
    ~0.6; the band-pass ones drop with it.

    Args:
        crops: (n, 112, 112, 3) uint8 BGR aligned crops (`align_faces`).
    """
    out = np.zeros((len(crops), THUMB_SIDE * THUMB_SIDE), np.float32)
    m = THUMB_MARGIN
    for i, crop in enumerate(crops):
        grey = cv2.cvtColor(crop[m : crop.shape[0] - m, m : crop.shape[1] - m], cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
        t = (small - cv2.GaussianBlur(small, (0, 0), THUMB_SIGMA)).ravel()
        t -= t.mean()
        norm = float(np.linalg.norm(t))
        if norm > 1e-6:  # a flat crop stays all zero: similar to nothing
            out[i] = t / norm
    return out


def _side(xyxy: np.ndarray) -> np.ndarray:
    """√area of (n, 4) boxes, (n,) float64."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def continuations(prev: np.ndarray, boxes: np.ndarray, min_iou: float) -> dict[int, int]:
    """Face of this frame → the previous frame's face it continues (IoU ≥ `min_iou`).

    One-to-one, by `linear_sum_assignment` on 1 − IoU.
    """
    if not len(prev) or not len(boxes):
        return {}
    iou = box_iou(prev, boxes)
    allowed = iou >= min_iou
    cost = np.where(allowed, 1.0 - iou, _BLOCKED)
    return {int(j): int(i) for i, j in zip(*linear_sum_assignment(cost), strict=True) if allowed[i, j]}


def may_reuse(anchor: Anchor, time_s: float, side: float, thumb: np.ndarray, quality: float,
              rules: ReuseRules) -> bool:
    """Whether a continuing face passes the age, size, look and quality gates."""
    return bool(
        time_s - anchor.time_s <= rules.max_age_s
        and abs(side / max(anchor.side, 1e-6) - 1.0) <= rules.max_size_change
        and float(thumb @ anchor.thumb) >= rules.min_similarity
        and quality <= anchor.quality + rules.quality_margin
    )


class ReusePlanner:
    """Frame-by-frame reuse decisions for one chunk's faces, in the chunk's order.

    Call `plan` once per sampled frame in order, also for frames without
    faces (which end every run).
    """

    def __init__(self, rules: ReuseRules) -> None:
        self.rules = rules
        self._boxes = np.zeros((0, 4), np.float32)
        self._anchors: list[Anchor] = []
        self._count = 0

    def plan(self, frame: FrameFaces) -> ReusePlan:
        """Which faces of the next sampled frame to embed, and where the others' outputs come from."""
        n = len(frame)
        ordinals = np.arange(self._count, self._count + n, dtype=np.int64)
        source = ordinals.copy()
        anchors: list[Anchor] = []
        links = continuations(self._boxes, frame.xyxy, self.rules.min_iou) if self.rules.max_age_s > 0 else {}
        sides = _side(frame.xyxy)
        for j in range(n):
            prev = self._anchors[links[j]] if j in links else None
            quality = float(frame.quality[j])
            if prev is not None and may_reuse(prev, frame.time_s, float(sides[j]), frame.thumbs[j], quality,
                                              self.rules):
                source[j] = prev.ordinal
                anchors.append(prev)
            else:
                anchors.append(Anchor(int(ordinals[j]), frame.time_s, frame.thumbs[j], quality, float(sides[j])))
        self._boxes = np.asarray(frame.xyxy, np.float32).reshape(-1, 4)
        self._anchors = anchors
        self._count += n
        return ReusePlan(source=source, fresh=source == ordinals)


def fresh_rows(source: np.ndarray) -> np.ndarray:
    """For the source ordinals of a whole chunk, each face's row among the fresh faces' outputs.

    Fresh faces' outputs are computed in the chunk's order of faces, so
    ``outputs[fresh_rows(source)]`` gives every face its own or its anchor's.

    Example:
        >>> fresh_rows(np.array([0, 0, 2, 2, 0])).tolist()
        [0, 0, 1, 1, 0]
    """
    source = np.asarray(source, np.int64)
    fresh = source == np.arange(len(source))
    if not np.all(fresh[source]):
        raise ValueError("every source must be a fresh face")
    return (np.cumsum(fresh) - 1)[source]
