"""Index rows per face or per track, appearances merged from hits, and search in track mode."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from faceid_jobs.photo import PhotoFace
from faceid_jobs.records import ChunkContext, faces_to_table
from faceid_jobs.search.appearances import (
    INDEX_META_COLUMNS,
    empty_meta,
    index_rows,
    merge_appearances,
    row_selector,
)
from faceid_jobs.search.query import Query, search_index
from faceid_jobs.types import Faces
from tests.memory_index import MemoryIndex

DIM = 8
FPS = 4.0  # one frame per sample: frame_index / 4 = seconds


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def table(rows: list[dict], chunk: int = 0, fp: str = "s1-v") -> pa.Table:
    """rows: dicts with frame, track (None allowed), quality, liveness, emb (DIM), optional score."""
    n = len(rows)
    track = [r.get("track") for r in rows]
    faces = Faces(
        xyxy=np.tile(np.array([[10, 10, 60, 70]], np.float32), (n, 1)),
        score=np.array([r.get("score", 0.9) for r in rows], np.float32),
        kps=np.zeros((n, 5, 2), np.float32),
        frame_idx=np.array([r["frame"] for r in rows], np.int64),
        embedding=np.stack([unit(r["emb"]) for r in rows]) if n else np.zeros((0, DIM), np.float32),
        liveness=np.array([r.get("liveness", 0.9) for r in rows], np.float32),
        quality=np.array([r.get("quality", 0.5) for r in rows], np.float32),
        track_id=None if any(t is None for t in track) else np.array(track, np.int64),
    )
    ctx = ChunkContext(f"{fp}.mp4", fp, chunk, FPS, "det", "emb", "live", "an")
    return faces_to_table(faces, ctx)


def track_rows(track: int, frames: range, quality=None, liveness=0.9, axis: int = 0) -> list[dict]:
    quality = quality or [0.5] * len(frames)
    pairs = enumerate(zip(frames, quality, strict=True))
    return [{"frame": f, "track": track, "quality": q, "liveness": liveness,
             "emb": np.eye(DIM)[axis] + 0.01 * i} for i, (f, q) in pairs]


def test_face_mode_keeps_every_face_with_null_spans():
    t = table(track_rows(1, range(10)))
    vectors, meta = index_rows(t, "face", 3)
    assert vectors.shape == (10, DIM) and vectors.dtype == np.float32
    assert meta.column_names == list(INDEX_META_COLUMNS)
    assert meta.column("face_id").to_pylist() == t.column("face_id").to_pylist()
    assert meta.column("start_s").null_count == 10


@pytest.mark.parametrize(
    ("frames", "per_track", "seconds", "expected"),
    [
        (range(1), 3, 2.5, 1),  # one face
        (range(9), 3, 2.5, 1),  # 2 s long
        (range(10), 3, 2.5, 1),  # 2.25 s
        (range(11), 3, 2.5, 2),  # 2.5 s
        (range(22), 3, 2.5, 3),  # 5.25 s
        (range(100), 3, 2.5, 3),  # capped by per_track
        (range(100), 1, 2.5, 1),
        (range(3), 5, 0.25, 3),  # never more than the faces it has
    ],
)
def test_vectors_per_track(frames, per_track, seconds, expected):
    vectors, meta = index_rows(table(track_rows(5, frames)), "track", per_track, vector_seconds=seconds)
    assert len(vectors) == meta.num_rows == expected
    assert set(meta.column("start_s").to_pylist()) == {frames[0] / FPS}
    assert set(meta.column("end_s").to_pylist()) == {frames[-1] / FPS}


def test_track_mode_picks_best_quality_face_of_each_stretch():
    quality = [0.1, 0.9, 0.2, 0.3, 0.1, 0.2, 0.8, 0.1, 0.3, 0.2, 0.6, 0.95]
    rows = track_rows(7, range(12), quality)  # 2.75 s: 2 stretches of 6 faces
    vectors, meta = index_rows(table(rows), "track", 3)
    assert meta.column("frame_index").to_pylist() == [1, 11]
    assert meta.column("quality").to_pylist() == pytest.approx([0.9, 0.95])
    assert np.allclose(vectors[0], unit(rows[1]["emb"]))


def test_tracks_kept_apart_and_ordered_and_track_liveness_is_the_mean():
    rows = track_rows(2, range(0, 4), liveness=0.2) + track_rows(1, range(2, 6), liveness=1.0, axis=1)
    rows[0]["liveness"] = 0.6  # track 2: mean of 0.6, 0.2, 0.2, 0.2 = 0.3
    _, meta = index_rows(table(rows), "track", 3)
    assert meta.column("track_id").to_pylist() == [2, 1]  # order of first appearance
    assert meta.column("liveness").to_pylist() == pytest.approx([0.3, 1.0])
    assert [round(v, 2) for v in meta.column("start_s").to_pylist()] == [0.0, 0.5]


@pytest.mark.parametrize(
    ("index_by", "min_liveness", "min_quality", "expected"),
    [
        ("face", 0.0, 0.0, 8),
        ("face", 0.5, 0.0, 4),  # the spoofed track's faces go
        ("face", 0.0, 0.45, 5),
        ("track", 0.0, 0.0, 2),
        ("track", 0.5, 0.0, 1),
        ("track", 0.0, 0.99, 0),  # no face of either track is good enough
        ("track", 0.0, 0.45, 2),  # track 1 keeps its one good face
    ],
)
def test_gates(index_by, min_liveness, min_quality, expected):
    rows = track_rows(1, range(4), [0.3, 0.3, 0.3, 0.5], liveness=0.1)
    rows += track_rows(2, range(4), [0.6, 0.7, 0.8, 0.9], liveness=0.95, axis=1)
    vectors, _ = index_rows(table(rows), index_by, 3, min_liveness=min_liveness, min_quality=min_quality)
    assert len(vectors) == expected


def test_missing_scores_fail_a_gate_and_missing_tracks_are_single_faces():
    t = table([{"frame": f, "track": None, "emb": np.eye(DIM)[0]} for f in range(3)])
    t = t.set_column(t.schema.get_field_index("liveness"), "liveness", pa.nulls(3, pa.float32()))
    assert len(index_rows(t, "track", 3)[0]) == 3  # no track ids: every face its own track
    assert len(index_rows(t, "track", 3, min_liveness=0.1)[0]) == 0
    assert len(index_rows(t, "face", 3, min_liveness=0.1)[0]) == 0


def test_empty_table_bad_arguments_and_selector():
    vectors, meta = index_rows(table([]), "track", 3)
    assert vectors.shape == (0, DIM) and meta.schema.equals(empty_meta().schema)
    with pytest.raises(ValueError, match="index_by"):
        index_rows(table([]), "frame", 3)
    with pytest.raises(ValueError, match="per_track"):
        index_rows(table([]), "track", 0)
    with pytest.raises(ValueError, match="index_by"):
        row_selector("tracks")
    t = table(track_rows(1, range(30)))
    assert len(row_selector("track", 2)(t)[0]) == 2 and len(row_selector("face")(t)[0]) == 30


MERGE_CASES = [
    pytest.param(
        [("v", 1, 0.0, 3.0, 0.5), ("v", 1, 0.0, 3.0, 0.7), ("v", 1, 0.0, 3.0, 0.6)],
        [(1, 0.0, 3.0)], id="hits of one track: one appearance, most similar row",
    ),
    pytest.param(
        [("v", 1, 0.0, 9.75, 0.5), ("v", 2, 10.0, 14.0, 0.8)],
        [(1, 0.0, 14.0)], id="track split at a chunk boundary is joined",
    ),
    pytest.param(
        [("v", 1, 11.0, 16.5, 0.6), ("v", 2, 18.75, 23.0, 0.8)],
        [(1, 18.75, 23.0), (0, 11.0, 16.5)], id="two shots 2 s apart stay apart",
    ),
    pytest.param(
        [("a", 1, 0.0, 2.0, 0.6), ("b", 1, 0.0, 2.0, 0.7)],
        [(1, 0.0, 2.0), (0, 0.0, 2.0)], id="other videos never merge",
    ),
    pytest.param(
        [("v", 1, 0.0, 5.0, 0.6), ("v", 2, 2.0, 3.0, 0.5)],
        [(0, 0.0, 5.0)], id="overlapping tracks",
    ),
    pytest.param(
        [("v", None, 1.0, None, 0.6), ("v", None, 1.0, None, 0.5)],
        [(0, 1.0, 1.0)], id="faces without tracks, same time",
    ),
    pytest.param([], [], id="no hits"),
]


@pytest.mark.parametrize(("hits", "expected"), MERGE_CASES)
def test_merge_appearances(hits, expected):
    cols = list(zip(*hits, strict=True)) if hits else [[]] * 5
    spans = merge_appearances(*cols[:4], cols[4], gap_s=1.0)
    assert [(s.row, s.start_s, s.end_s) for s in spans] == expected
    assert sorted(r for s in spans for r in s.rows) == list(range(len(hits)))


def make_index(index_by: str) -> tuple[MemoryIndex, np.ndarray]:
    """Person A (axis 0) in tracks 1 (0–5 s, live) and 2 (5.25–7 s, spoof), person B in track 3."""
    rows = track_rows(1, range(0, 21), liveness=0.9) + track_rows(2, range(21, 29), liveness=0.1)
    rows += track_rows(3, range(40, 60), axis=1)
    vectors, meta = index_rows(table(rows), index_by, 3)
    return MemoryIndex(vectors, meta), unit(np.eye(DIM)[0])


def query(embedding, liveness=None) -> Query:
    return Query(PhotoFace("q.jpg", (0, 0, 1, 1), 0.9, liveness=liveness), embedding, "emb")


def test_search_track_mode_gives_appearances():
    index, q = make_index("track")
    result = search_index(query(q), index, top_k=10, threshold=0.5, appearance_gap_s=1.0)
    assert result.mode == "track"
    [hit] = result.hits  # tracks 1 and 2 touch (0.25 s apart): one appearance
    assert (hit.start_s, hit.end_s) == (0.0, 7.0) and hit.track_id in (1, 2)
    data = result.to_json()["hits"][0]
    assert set(data) == {"video", "start_s", "end_s", "timestamp_s", "frame", "similarity", "liveness",
                         "quality", "track_id", "bbox", "face_id"}
    assert result.to_json()["index"]["index_by"] == "track"
    apart = search_index(query(q), index, top_k=10, threshold=0.5, appearance_gap_s=0.0)
    assert [(h.start_s, h.end_s) for h in sorted(apart.hits, key=lambda h: h.start_s)] == [(0.0, 5.0),
                                                                                            (5.25, 7.0)]


def test_search_min_liveness_leaves_out_spoofed_tracks():
    index, q = make_index("track")
    result = search_index(query(q), index, top_k=10, threshold=0.5, min_liveness=0.5)
    assert [(h.start_s, h.end_s, h.liveness) for h in result.hits] == [(0.0, 5.0, 0.9)]


def test_search_face_mode_hits_and_over_fetch():
    index, q = make_index("face")
    result = search_index(query(q), index, top_k=5, threshold=0.5, min_liveness=0.5)
    assert result.mode == "face" and len(result.hits) == 5
    assert all(h.liveness == pytest.approx(0.9) and h.start_s is None for h in result.hits)
    assert "start_s" not in result.to_json()["hits"][0]
    # The 8 most similar faces are the spoofed track's: the search has to look further.
    assert index.calls[-1] > 5
