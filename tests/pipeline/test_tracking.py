"""Tracking inside a chunk: IoU + cosine assignment, gates, gaps and track ids."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.pipeline.tracking import TRACK_BITS, box_iou, link_tracks, track_faces, track_id_base
from faceid_jobs.types import Faces

DIM = 8
STEP = 6  # frames between samples (4 fps of 24 fps video)
PEOPLE = np.eye(DIM, dtype=np.float32)  # orthogonal identities


def person(i: int, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    v = PEOPLE[i] + jitter * np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def faces(rows: list[tuple[int, tuple[float, float, float, float], np.ndarray]]) -> Faces:
    """rows: (frame, box, embedding)."""
    n = len(rows)
    return Faces(
        xyxy=np.array([r[1] for r in rows], np.float32).reshape(n, 4),
        score=np.full(n, 0.9, np.float32),
        kps=np.zeros((n, 5, 2), np.float32),
        frame_idx=np.array([r[0] for r in rows], np.int64),
        embedding=np.array([r[2] for r in rows], np.float32).reshape(n, DIM),
    )


def link(f: Faces, chunk: int = 0, **kw) -> list[int]:
    kw.setdefault("max_gap_frames", 24)
    return (link_tracks(f, chunk_index=chunk, **kw) - track_id_base(chunk)).tolist()


LEFT, RIGHT = (100, 100, 200, 220), (600, 100, 700, 220)


def shifted(box, dx):
    return (box[0] + dx, box[1], box[2] + dx, box[3])


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),
        ((0, 0, 10, 10), (2, 2, 4, 4), 0.04),
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
    ],
)
def test_box_iou(a, b, iou):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(iou)


CASES = [
    pytest.param(
        [(0, LEFT, person(0)), (0, RIGHT, person(1)),
         (6, shifted(LEFT, 10), person(0, 0.2, 1)), (6, shifted(RIGHT, -10), person(1, 0.2, 2)),
         (12, shifted(LEFT, 20), person(0, 0.2, 3)), (12, shifted(RIGHT, -20), person(1, 0.2, 4))],
        {}, [0, 1, 0, 1, 0, 1], id="two people moving",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (6, LEFT, person(0)), (12, LEFT, person(2)), (18, LEFT, person(2))],
        {}, [0, 0, 1, 1], id="cut: same box, another person ends the track",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (6, RIGHT, person(0))],
        {}, [0, 1], id="same person jumping across the frame: a new track",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (24, LEFT, person(0)), (54, LEFT, person(0))],
        {"max_gap_frames": 24}, [0, 0, 1], id="gap up to max_gap continues, longer ends",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (0, shifted(LEFT, 30), person(1)),
         (6, shifted(LEFT, 30), person(0)), (6, LEFT, person(1))],
        {}, [0, 1, 0, 1], id="overlapping faces swap places: embeddings decide",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (6, shifted(LEFT, 75), person(0))],
        {"min_iou": 0.2}, [0, 1], id="moved too far for min_iou",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (6, shifted(LEFT, 75), person(0))],
        {"min_iou": 0.05}, [0, 0], id="lower min_iou follows faster motion",
    ),
    pytest.param(
        [(0, LEFT, person(0)), (6, LEFT, person(0, 1.2, 5))],
        {"min_cosine": 0.9}, [0, 1], id="strict min_cosine splits a changing face",
    ),
    pytest.param(
        [(6, LEFT, person(0)), (0, LEFT, person(0)), (12, LEFT, person(0))],
        {}, [0, 0, 0], id="rows in any order",
    ),
]


@pytest.mark.parametrize(("rows", "kw", "expected"), CASES)
def test_link_tracks(rows, kw, expected):
    assert link(faces(rows), **kw) == expected


def test_ids_are_chunk_based_unique_and_deterministic():
    rows = [(0, LEFT, person(0)), (0, RIGHT, person(1)), (6, LEFT, person(2))]
    a = link_tracks(faces(rows), chunk_index=7, max_gap_frames=24)
    b = link_tracks(faces(rows), chunk_index=7, max_gap_frames=24)
    assert a.dtype == np.int64 and a.tolist() == b.tolist()
    assert (a >> TRACK_BITS).tolist() == [7, 7, 7] and sorted(a & 0xFFFFFFFF) == [0, 1, 2]
    other = link_tracks(faces(rows), chunk_index=8, max_gap_frames=24)
    assert not set(a.tolist()) & set(other.tolist())


def test_track_faces_fills_the_field_and_edge_cases():
    f = faces([(0, LEFT, person(0)), (6, LEFT, person(0))])
    assert track_faces(f, chunk_index=0, max_gap_frames=6).track_id.tolist() == [0, 0]
    assert link_tracks(Faces.empty(DIM), chunk_index=0, max_gap_frames=6).shape == (0,)
    with pytest.raises(ValueError, match="embeddings"):
        link_tracks(f.with_fields(embedding=None), chunk_index=0, max_gap_frames=6)
    with pytest.raises(ValueError, match="chunk_index"):
        track_id_base(-1)
