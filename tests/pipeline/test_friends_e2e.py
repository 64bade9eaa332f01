"""The core job end to end on real footage: process the Friends clip at 4 fps, search each portrait."""

from __future__ import annotations

import pytest

from faceid_jobs.images import read_photo
from faceid_jobs.index import open_index
from faceid_jobs.pipeline.process import process_sources
from faceid_jobs.search.query import search_image
from tests.friends import EDGE, PEOPLE, absent_shots, expected_shots, shot_of

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def processed(make_workspace, friends_clip, models, cpu_settings):
    ws = make_workspace()
    settings = cpu_settings.replace(sample_fps=4.0, chunk_seconds=10.0)
    summary = process_sources([str(friends_clip)], settings, ws, models)
    return ws, settings, summary


def test_summary_counts(processed):
    _, _, summary = processed
    assert summary.ok, summary.failures
    assert summary.videos == 1 and summary.chunks_done == 3 and summary.chunks_failed == 0
    assert summary.frames_sampled == 106
    # ~1,360 faces in 632 frames every-frame; 4 fps samples 1/6 of the frames.
    assert 150 <= summary.faces <= 320
    assert summary.faces_in_store == summary.faces
    # index_by = "track" (the default): a few faces per track, not every face.
    assert summary.indexed_vectors * 5 <= summary.faces


def test_every_row_is_well_formed(processed):
    ws, _, _ = processed
    index = open_index(ws.store, ws.keys)
    meta = index.meta.to_pydict()
    assert len(set(meta["face_id"])) == len(meta["face_id"])
    rows = zip(meta["bbox"], meta["timestamp_s"], meta["frame_index"], meta["liveness"], meta["quality"],
               meta["start_s"], meta["end_s"], strict=True)
    for bbox, t, f, live, quality, start, end in rows:
        assert 0 <= bbox[0] < bbox[2] <= 1280 and 0 <= bbox[1] < bbox[3] <= 720
        assert t == pytest.approx(f / 23.976, abs=1e-3)
        assert 0.0 <= live <= 1.0 and 0.0 <= quality <= 1.0
        assert start <= t <= end


@pytest.mark.parametrize("person", PEOPLE)
def test_portrait_found_in_its_shots_and_nowhere_else(processed, models, portraits, person):
    ws, _, _ = processed
    index = open_index(ws.store, ws.keys)
    result = search_image(read_photo(portraits[person]), person, models, index,
                          top_k=1000, threshold=0.4)
    # Hits are appearances: every shot an appearance spans counts.
    shots = {shot_of(f) for h in result.hits for f in range(round(h.start_s * 23.976),
                                                             round(h.end_s * 23.976) + 1)}
    assert expected_shots(person) <= shots, f"{person} not found in {expected_shots(person) - shots}"
    assert not shots & absent_shots(person), f"{person} wrongly found in {shots & absent_shots(person)}"
    # Where the person is only cut off at the frame edge, the hits are at that edge.
    for hit in result.hits:
        side = EDGE.get((person, shot_of(hit.frame)))
        if side == "left":
            assert hit.bbox[0] < 100, hit
        elif side == "right":
            assert hit.bbox[2] > 1180, hit
    # Ranked by similarity, all above the threshold.
    sims = [h.similarity for h in result.hits]
    assert sims == sorted(sims, reverse=True) and min(sims) >= 0.4


def test_rerun_skips_every_chunk_and_changes_nothing(processed, friends_clip, models):
    ws, settings, first = processed
    store = ws.store
    before = {k: store.get(k) for k in store.list("")}
    again = process_sources([str(friends_clip)], settings, ws, models)
    assert again.chunks_done == 0 and again.chunks_skipped == first.chunks_done
    assert again.faces == 0 and again.faces_in_store == first.faces_in_store
    assert again.index.published is False and again.index.version == first.index.version
    assert {k: store.get(k) for k in store.list("")} == before
