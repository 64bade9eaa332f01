"""Forget an identity (with its appearances) or a video: records, labels, index, keys, audit (no models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceid_jobs.identity.audit import AUDIT_PREFIX, history, list_audit
from faceid_jobs.identity.forget import UnknownVideoError, forget_identity, forget_video, record_key_refs
from faceid_jobs.identity.gallery import UnknownIdentityError, enroll, load_gallery
from faceid_jobs.identity.labels import find_identity, label_versions, relabel
from faceid_jobs.index import list_versions, merge_index, open_index
from faceid_jobs.index.merge import STALE_PREFIX
from faceid_jobs.records import parquet_to_table
from faceid_jobs.storage import load_entry
from tests.synthetic_store import EMBEDDER, add_video, faces_of, people, photo

THRESHOLD = 0.5


@pytest.fixture()
def world(make_workspace):
    """Ross and Rachel in video v1 (current analysis "an", and an older analysis "old"), Ross in v2;
    everyone enrolled, labelled and indexed."""
    rng = np.random.default_rng(1)
    p = people(["Ross", "Rachel", "Monica"], seed=7)
    ws = make_workspace()
    # An older analysis of v1 (its catalog entry has moved on to "an") also holds Ross.
    old = add_video(ws, "v1", [[(v, 5) for v in faces_of(p["Ross"], 2, rng)]], analysis="old")
    add_video(ws, "v1", [
        [(v, 1) for v in faces_of(p["Ross"], 4, rng)] + [(v, 2) for v in faces_of(p["Rachel"], 3, rng)],
        [(v, 3) for v in faces_of(p["Monica"], 2, rng)]])
    add_video(ws, "v2", [[(v, 9) for v in faces_of(p["Ross"], 2, rng)] + [(p["Monica"], 10)]])
    enroll(ws, {n: [(photo(n), p[n])] for n in p}, EMBEDDER)
    relabel(ws, EMBEDDER, THRESHOLD)

    def merge():
        return merge_index(ws.store, ws.keys, EMBEDDER, cipher=ws.cipher)

    merge()
    return ws, p, merge, old


def _vectors(ws):
    out = []
    for key in ws.store.list("records/"):
        table = parquet_to_table(ws.store.get(key), key, ["embedding"], cipher=ws.cipher)
        if table.num_rows:
            out.append(np.asarray(table.column("embedding").combine_chunks().values, np.float32).reshape(
                table.num_rows, -1))
    return np.concatenate(out)


def test_forget_with_purge_removes_the_person_everywhere(world):
    ws, p, merge, old = world
    before = _vectors(ws)
    assert (before @ p["Ross"] > THRESHOLD).sum() == 4 + 2 + 2
    old_refs = record_key_refs(ws.store.get(old[0]))
    result = forget_identity(ws, "Ross", embedder_id=EMBEDDER, threshold=THRESHOLD, purge_appearances=True,
                             merge=merge, relabel_after=True)
    assert result.faces_deleted == 8 and result.record_files_rewritten == 3 and result.record_files_read == 4
    after = _vectors(ws)
    assert (after @ p["Ross"] > THRESHOLD).sum() == 0 and len(after) == len(before) - 8
    # The old files' data keys are gone: a copy of an old file can no longer be read.
    assert all(not ws.store.exists(ws.keys.key_of(r)) for r in old_refs)
    # The index was rebuilt without Ross; the previous version still holds him until gc.
    index = open_index(ws.store, ws.keys)
    scores, _ = index.search(p["Ross"][None], 5)
    assert float(scores.max()) < THRESHOLD
    assert result.index["published"] and result.index_versions_holding_data == list_versions(ws.store)[:-1]
    assert not list(ws.store.list(STALE_PREFIX))
    # Gallery, labels and find.
    assert "Ross" not in load_gallery(ws).names
    assert label_versions(ws) == [load_gallery(ws).version] and result.labels["files"] == 3
    with pytest.raises(UnknownIdentityError):
        find_identity(ws, "Ross")
    assert find_identity(ws, "Rachel").appearances
    # The audit record says who and what, and holds no vector.
    [record] = [r for r in list_audit(ws.store) if r["action"] == "forget"]
    assert [e.key for e in history(ws.keys, [record], "Ross")] == [record["key"]]
    assert b"Ross" not in ws.store.get(record["key"]) and record["what"]["faces_deleted"] == 8
    assert set(record["who"]) == {"user", "host"} and record["key"].startswith(AUDIT_PREFIX)
    assert len(json.dumps(record)) < 1000


def test_purge_with_gc_leaves_one_index_version(world):
    ws, _, merge, _ = world
    result = forget_identity(ws, "Ross", embedder_id=EMBEDDER, threshold=THRESHOLD, purge_appearances=True,
                             merge=merge, gc_keep=1)
    assert len(list_versions(ws.store)) == 1 and result.index_versions_holding_data == []


def test_forget_without_purge_keeps_the_faces(world):
    ws, _, _, _ = world
    before = len(_vectors(ws))
    result = forget_identity(ws, "Ross", embedder_id=EMBEDDER, threshold=THRESHOLD)
    assert result.faces_deleted == 0 and result.index is None and len(_vectors(ws)) == before
    assert "Ross" not in load_gallery(ws).names


def test_forget_video_deletes_its_records_labels_and_entry(world):
    ws, _, merge, _ = world
    result = forget_video(ws, "/videos/v1.mp4", merge=merge)
    assert result.record_files_deleted == 3 and result.faces_deleted == 2 + 7 + 2
    assert load_entry(ws.store, "v1", ws.keys) is None
    assert [k.split("/")[3] for k in ws.store.list("records/")] == ["v2"]
    assert not [k for k in ws.store.list("labels/") if k.split("/")[5] == "v1"]
    index = open_index(ws.store, ws.keys)
    assert set(index.meta.column("video_fingerprint").to_pylist()) == {"v2"}
    assert [a.video for a in find_identity(ws, "Ross").appearances] == ["/videos/v2.mp4"]
    assert list_audit(ws.store)[-1]["action"] == "forget-video"
    with pytest.raises(UnknownVideoError):
        forget_video(ws, "/videos/v1.mp4")
    assert forget_video(ws, "v2", merge=merge).record_files_deleted == 1  # by fingerprint


def _ross_in_records(ws, p) -> int:
    return int((_vectors(ws) @ p["Ross"] > THRESHOLD).sum())


def test_chunks_stored_while_a_forget_merges_are_purged_too(world):
    """A `process` storing footage after the forget's first pass (here: while it merges, and again while
    it writes its audit record) loses the person's faces from its record files as well, so a later merge
    that reads them again (a rebuild) does not bring the person back."""
    import faceid_jobs.identity.forget as forget_module

    ws, p, merge, _ = world
    rng = np.random.default_rng(3)
    stored = []

    def racing_merge():
        if not stored:  # a chunk finished during the purge, before the merge
            stored.append(add_video(ws, "v3", [[(v, 20) for v in faces_of(p["Ross"], 3, rng)]
                                               + [(p["Rachel"], 21)]]))
        return merge()

    real_audit = forget_module.write_audit

    def racing_audit(*args, **kwargs):  # a chunk finished after the gallery step
        stored.append(add_video(ws, "v4", [[(v, 30) for v in faces_of(p["Ross"], 2, rng)]]))
        return real_audit(*args, **kwargs)

    forget_module.write_audit = racing_audit
    try:
        result = forget_identity(ws, "Ross", embedder_id=EMBEDDER, threshold=THRESHOLD,
                                 purge_appearances=True, merge=racing_merge, relabel_after=True)
    finally:
        forget_module.write_audit = real_audit
    assert len(stored) == 2
    assert result.faces_deleted == 8 + 3 + 2 and result.record_files_rewritten == 3 + 2
    assert _ross_in_records(ws, p) == 0 and (_vectors(ws) @ p["Rachel"] > THRESHOLD).sum() == 3 + 1
    assert not list(ws.store.list("journal/")) and not list(ws.store.list(STALE_PREFIX))
    # Nothing left for a later merge to bring back: re-indexing every record file finds no Ross.
    from faceid_jobs.index.merge import mark_stale

    mark_stale(ws.store, ws.keys, [k for k in ws.store.list("records/") if k.endswith(".parquet")])
    assert merge().shards_kept == 0
    scores, _ = open_index(ws.store, ws.keys).search(p["Ross"][None], 5)
    assert float(scores.max()) < THRESHOLD
    assert label_versions(ws) == [load_gallery(ws).version]


def test_a_resumed_forget_purges_chunks_stored_after_its_gallery_step(world, monkeypatch):
    """Killed after the gallery change, then a `process` stored the person's faces: the resume purges
    them (it reads every record file again, telling the person by the intent's embeddings)."""
    from faceid_jobs.identity.forget import resume_forgets
    from faceid_jobs.identity.intent import CRASH_ENV

    ws, p, merge, _ = world

    class Crashed(Exception):
        pass

    def crash(step):
        if step == "gallery":
            raise Crashed

    monkeypatch.setattr("faceid_jobs.identity.forget.crash_point", crash)
    with pytest.raises(Crashed):
        forget_identity(ws, "Ross", embedder_id=EMBEDDER, threshold=THRESHOLD, purge_appearances=True,
                        merge=merge)
    monkeypatch.undo()
    assert CRASH_ENV and "Ross" not in load_gallery(ws).names and list(ws.store.list("journal/"))
    add_video(ws, "v5", [[(v, 40) for v in faces_of(p["Ross"], 3, np.random.default_rng(4))]])
    [done] = resume_forgets(ws, merge_for=lambda _: merge)
    assert done.faces_deleted == 3 and _ross_in_records(ws, p) == 0
    assert not list(ws.store.list("journal/"))
