"""The core job end to end on real footage: process the Friends clip at 4 fps, search each portrait."""

from __future__ import annotations

import pytest

from faceid_jobs.images import read_photo
from faceid_jobs.index import load_index
from faceid_jobs.pipeline.process import process_sources
from faceid_jobs.search import search_image
from faceid_jobs.storage import LocalStore
from tests.friends import EDGE, PEOPLE, absent_shots, expected_shots, shot_of

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def processed(tmp_path_factory, friends_clip, models, cpu_settings):
    store = LocalStore(tmp_path_factory.mktemp("store"))
    settings = cpu_settings.replace(sample_fps=4.0, chunk_seconds=10.0)
    summary = process_sources([str(friends_clip)], settings, store, models)
    return store, settings, summary


def test_summary_counts(processed):
    _, _, summary = processed
    assert summary.ok, summary.failures
    assert summary.videos == 1 and summary.chunks_done == 3 and summary.chunks_failed == 0
    assert summary.frames_sampled == 106
    # ~1,360 faces in 632 frames every-frame; 4 fps samples 1/6 of the frames.
    assert 150 <= summary.faces <= 320
    assert summary.faces_in_store == summary.faces == summary.indexed_vectors


def test_every_row_is_well_formed(processed):
    store, _, _ = processed
    index = load_index(store)
    meta = index.meta.to_pydict()
    assert len(set(meta["face_id"])) == len(meta["face_id"])
    rows = zip(meta["bbox"], meta["timestamp_s"], meta["frame_index"], meta["liveness"], strict=True)
    for bbox, t, f, live in rows:
        assert 0 <= bbox[0] < bbox[2] <= 1280 and 0 <= bbox[1] < bbox[3] <= 720
        assert t == pytest.approx(f / 23.976, abs=1e-3)
        assert 0.0 <= live <= 1.0


@pytest.mark.parametrize("person", PEOPLE)
def test_portrait_found_in_its_shots_and_nowhere_else(processed, models, portraits, person):
    store, _, _ = processed
    index = load_index(store)
    result = search_image(read_photo(portraits[person]), person, models, index,
                          top_k=1000, threshold=0.4)
    shots = {shot_of(h.frame) for h in result.hits}
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
    store, settings, first = processed
    before = {k: store.get(k) for k in store.list("records/")}
    again = process_sources([str(friends_clip)], settings, store, models, build=False)
    assert again.chunks_done == 0 and again.chunks_skipped == first.chunks_done
    assert again.faces == 0 and again.faces_in_store == first.faces_in_store
    assert {k: store.get(k) for k in store.list("records/")} == before
