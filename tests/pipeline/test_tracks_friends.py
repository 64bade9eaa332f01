"""Tracks, quality and the track index on real footage: the Friends clip at 4 fps.

The clip is analysed once (three 10-second chunks, so tracks also meet chunk
boundaries); the record tables are then indexed per face and per track with
`index_rows` and searched with each portrait through `search_index`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from faceid_jobs.images import read_photo
from faceid_jobs.pipeline.chunk import analyse_chunk
from faceid_jobs.pipeline.plan import plan_video
from faceid_jobs.pipeline.tracking import TRACK_BITS
from faceid_jobs.records import ChunkContext, faces_to_table
from faceid_jobs.search.appearances import index_rows
from faceid_jobs.search.query import make_query, search_index
from tests.friends import EDGE, PEOPLE, SHOTS, absent_shots, expected_shots, shot_of
from tests.memory_index import MemoryIndex

pytestmark = [pytest.mark.models, pytest.mark.slow]

FPS = 23.976
MATCH = 0.4  # a face matches a portrait at cosine >= 0.4, best of six


@pytest.fixture(scope="module")
def clip(friends_clip, models, cpu_settings, portraits):
    settings = cpu_settings.replace(sample_fps=4.0, chunk_seconds=10.0)
    plan = plan_video(str(friends_clip), Path(friends_clip), settings, "test")
    tables = []
    for job in plan.jobs:
        faces = analyse_chunk(job, models, settings).faces
        ctx = ChunkContext(plan.uri, plan.fingerprint, job.chunk.index, job.fps, models.ids["detector"],
                           models.ids["embedder"], models.liveness_id, "test")
        tables.append(faces_to_table(faces, ctx))
    queries = {p: make_query(read_photo(portraits[p]), p, models) for p in PEOPLE}
    return tables, queries


def rows(tables: list[pa.Table]) -> dict[str, list]:
    return pa.concat_tables(tables).select(
        ["frame_index", "chunk_index", "track_id", "liveness", "quality", "embedding"]).to_pydict()


def build(tables, index_by: str, **kw) -> MemoryIndex:
    parts = [index_rows(t, index_by, 3, **kw) for t in tables]
    return MemoryIndex(np.concatenate([v for v, _ in parts]), pa.concat_tables([m for _, m in parts]),
                       embedder_id=tables[0].column("embedder_id")[0].as_py())


def test_every_row_has_liveness_quality_and_a_track_in_range(clip):
    tables, _ = clip
    r = rows(tables)
    assert 150 <= len(r["frame_index"]) <= 320
    for live, quality, track, chunk in zip(r["liveness"], r["quality"], r["track_id"], r["chunk_index"],
                                           strict=True):
        assert 0.0 <= live <= 1.0 and 0.0 <= quality <= 1.0
        assert track is not None and track >> TRACK_BITS == chunk


def test_no_track_mixes_people_or_crosses_a_cut(clip):
    tables, queries = clip
    r = rows(tables)
    names = list(queries)
    sims = np.asarray(r["embedding"], np.float32) @ np.stack([queries[p].embedding for p in names]).T
    matched, shots = defaultdict(set), defaultdict(set)
    for i, track in enumerate(r["track_id"]):
        if sims[i].max() >= MATCH:
            matched[track].add(names[int(sims[i].argmax())])
        shots[track].add(shot_of(r["frame_index"][i]))
    assert {t: m for t, m in matched.items() if len(m) > 1} == {}
    # A cut puts Ross where Chandler was (shots 2 → 3): the track must end there.
    assert {t: s for t, s in shots.items() if len(s) > 1} == {}
    # Tracks really group faces: far fewer tracks than faces.
    assert len(shots) * 4 < len(r["track_id"])


def test_track_index_is_5x_smaller_and_still_finds_every_shot(clip):
    tables, queries = clip
    faces = sum(t.num_rows for t in tables)
    index = build(tables, "track")
    assert len(build(tables, "face")) == faces
    assert len(index) * 5 <= faces, f"{len(index)} vectors for {faces} faces"
    for person, query in queries.items():
        result = search_index(query, index, top_k=100, threshold=MATCH)
        assert result.mode == "track"
        found = set()
        for hit in result.hits:
            # An appearance may run across a cut when the person is on both sides of it
            # (Phoebe, shots 5 → 6), never into a shot where they are absent.
            frames = range(round(hit.start_s * FPS), round(hit.end_s * FPS) + 1)
            assert hit.start_s <= hit.timestamp_s <= hit.end_s, hit
            found |= {shot_of(f) for f in frames}
            side = EDGE.get((person, shot_of(hit.frame)))
            if side is not None:  # present only at the frame edge there
                assert hit.bbox[0] < 100 if side == "left" else hit.bbox[2] > 1180, hit
        assert expected_shots(person) <= found, f"{person} not found in {expected_shots(person) - found}"
        assert not found & absent_shots(person), f"{person} wrongly found in {found & absent_shots(person)}"


def test_ross_appears_in_shots_3_and_5_only(clip):
    tables, queries = clip
    result = search_index(queries["Ross"], build(tables, "track"), top_k=100, threshold=MATCH)
    spans = [(h.start_s, h.end_s) for h in result.hits]
    shots = {s: (SHOTS[s][0] / FPS, SHOTS[s][1] / FPS) for s in (3, 5)}
    for start, end in spans:
        assert any(lo - 0.05 <= start <= end <= hi + 0.05 for lo, hi in shots.values()), (start, end)
    covered = {s for s, (lo, hi) in shots.items() for start, end in spans if lo - 0.05 <= start <= hi}
    assert covered == {3, 5}
    sims = [h.similarity for h in result.hits]
    assert sims == sorted(sims, reverse=True)


def test_gates_shrink_the_index(clip):
    tables, _ = clip
    every = len(build(tables, "face"))
    assert len(build(tables, "face", min_liveness=0.9)) < every
    assert len(build(tables, "face", min_quality=0.7)) < every
    assert len(build(tables, "track", min_quality=0.7)) < len(build(tables, "track"))
