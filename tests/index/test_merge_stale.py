"""Stale marks: a record file rewritten under its own key is re-indexed only when marked (no models)."""

from __future__ import annotations

import numpy as np

from faceid_jobs.index import load_manifest, merge_index
from faceid_jobs.index.merge import STALE_PREFIX, mark_stale
from faceid_jobs.records import parquet_to_table, table_to_parquet
from tests.synthetic_store import EMBEDDER, add_video, faces_of, people


def test_rewritten_record_is_reindexed_once_marked(make_workspace):
    rng = np.random.default_rng(0)
    p = people(["a", "b"])
    ws = make_workspace()
    keys = add_video(ws, "v", [[(v, None) for v in faces_of(p["a"], 4, rng)],
                               [(v, None) for v in faces_of(p["b"], 3, rng)]])
    first = merge_index(ws.store, ws.keys, EMBEDDER, cipher=ws.cipher)
    assert first.vectors == 7
    table = parquet_to_table(ws.store.get(keys[0]), keys[0], cipher=ws.cipher)
    ws.store.put(keys[0], table_to_parquet(table.slice(0, 1), ws.cipher, key=keys[0]))
    # Same key, so the merge cannot tell: nothing is published (hence the marks).
    assert not merge_index(ws.store, ws.keys, EMBEDDER, cipher=ws.cipher).published
    assert mark_stale(ws.store, ws.keys, []) is None
    mark = mark_stale(ws.store, ws.keys, [keys[0]], reason="test")
    assert mark.startswith(STALE_PREFIX) and ws.store.exists(mark)
    second = merge_index(ws.store, ws.keys, EMBEDDER, cipher=ws.cipher)
    assert second.published and second.vectors == 4 and second.version == first.version + 1
    assert not list(ws.store.list(STALE_PREFIX))  # consumed by the published merge
    assert load_manifest(ws.store, ws.keys).sources == set(keys)
    assert not merge_index(ws.store, ws.keys, EMBEDDER, cipher=ws.cipher).published  # and not again
