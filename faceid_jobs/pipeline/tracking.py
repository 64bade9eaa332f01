"""Link the faces of one chunk's sampled frames into tracks (pure).

A track is one person seen over consecutive samples. Frames are visited in
order; the faces of each frame are assigned to the live tracks by
`scipy.optimize.linear_sum_assignment` on the cost
``1 − (w·IoU + (1 − w)·cosine)`` between each track's last box and
embedding and each face. A pair is allowed only if **both** gates pass:

- the boxes overlap (IoU ≥ `min_iou`): a face does not jump across the frame
  between two samples, so two people are never swapped by position;
- the embeddings agree (cosine ≥ `min_cosine`): when a cut puts another
  person where the last one was, the box still overlaps but the embedding
  does not, so the old track ends and a new one starts. Same-person cosines
  between neighbouring samples are ~0.6–0.95 with ArcFace; different people
  ~0–0.3.

Faces left unassigned start new tracks; a track not continued for more than
`max_gap_frames` frames ends (a missed detection or a face turned away for a
moment does not split a track, a longer absence does).

Track ids are ``chunk_index << 32 | k`` (k counts the chunk's tracks in the
order they start), so they are deterministic and unique within a video
without any state shared between chunks.

Why tracks stop at chunk boundaries: chunks are independent, idempotent
units of work (run in any order, retried, run on different workers), and
their records must depend only on the chunk itself. Carrying a track in
would make a chunk's rows depend on the previous chunk's result. The price
is at most one split per person per `chunk_seconds` (30 s by default); search
joins the two halves again when it merges hits into appearances
(`faceid_jobs.search.appearances.merge_appearances`).

Example:
    >>> import numpy as np
    >>> from faceid_jobs.types import Faces, box_iou
    >>> e = np.eye(4, dtype=np.float32)[[0, 0]]
    >>> faces = Faces(xyxy=np.array([[0, 0, 10, 10]] * 2, np.float32), score=np.ones(2, np.float32),
    ...               kps=np.zeros((2, 5, 2), np.float32), frame_idx=np.array([0, 6]), embedding=e)
    >>> link_tracks(faces, chunk_index=1, max_gap_frames=6).tolist()
    [4294967296, 4294967296]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from faceid_jobs.types import Faces, box_iou

__all__ = ["TRACK_BITS", "box_iou", "link_tracks", "track_faces", "track_id_base"]

# Low bits of a track id that number the tracks within a chunk.
TRACK_BITS = 32
_BLOCKED = 1e6


def track_id_base(chunk_index: int) -> int:
    """First track id of a chunk: ``chunk_index << TRACK_BITS``."""
    if chunk_index < 0:
        raise ValueError(f"chunk_index must be >= 0, got {chunk_index}")
    return int(chunk_index) << TRACK_BITS


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    embedding: np.ndarray
    last_frame: int


def link_tracks(
    faces: Faces,
    *,
    chunk_index: int,
    max_gap_frames: int,
    min_iou: float = 0.2,
    min_cosine: float = 0.35,
    iou_weight: float = 0.5,
) -> np.ndarray:
    """Track id of every face of one chunk.

    Args:
        faces: the chunk's faces with L2-normalised embeddings, any order.
        chunk_index: the chunk's index in its video (high bits of the ids).
        max_gap_frames: a track may skip up to this many frames (video
            frame numbers, not samples) and still be continued.
        min_iou: least box overlap for a face to continue a track. Lower
            follows faster motion, but risks joining neighbours.
        min_cosine: least embedding cosine to continue a track. Higher
            never mixes people, but splits a person who turns away.
        iou_weight: weight of IoU against cosine in the assignment cost.

    Returns:
        (n,) int64 track ids, aligned with `faces`.

    Raises:
        ValueError: `faces` has no embeddings.
    """
    n = len(faces)
    ids = np.full(n, -1, np.int64)
    if n == 0:
        return ids
    if faces.embedding is None:
        raise ValueError("tracking needs embeddings")
    base = track_id_base(chunk_index)
    emb = np.asarray(faces.embedding, np.float64)
    order = np.argsort(faces.frame_idx, kind="stable")
    frames = faces.frame_idx[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    ends = np.r_[starts[1:], n]
    live: list[_Track] = []
    count = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = order[s:e]
        frame = int(frames[s])
        live = [t for t in live if frame - t.last_frame <= max_gap_frames]
        assigned: dict[int, int] = {}
        if live:
            boxes = np.stack([t.box for t in live])
            t_emb = np.stack([t.embedding for t in live])
            iou = box_iou(boxes, faces.xyxy[rows])
            cos = t_emb @ emb[rows].T
            allowed = (iou >= min_iou) & (cos >= min_cosine)
            cost = np.where(allowed, 1.0 - (iou_weight * iou + (1.0 - iou_weight) * cos), _BLOCKED)
            for ti, fi in zip(*linear_sum_assignment(cost), strict=True):
                if allowed[ti, fi]:
                    assigned[int(fi)] = int(ti)
        for fi, row in enumerate(rows.tolist()):
            if fi in assigned:
                track = live[assigned[fi]]
            else:
                track = _Track(base + count, faces.xyxy[row], emb[row], frame)
                count += 1
                live.append(track)
            track.box, track.embedding, track.last_frame = faces.xyxy[row], emb[row], frame
            ids[row] = track.track_id
    return ids


def track_faces(faces: Faces, **kwargs: object) -> Faces:
    """`faces` with `track_id` filled by `link_tracks` (same keyword arguments)."""
    return faces.with_fields(track_id=link_tracks(faces, **kwargs))  # type: ignore[arg-type]
