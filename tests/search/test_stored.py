"""Search results in the store (`faceid_jobs.search.stored`): sealed, bound to their run and file name."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from faceid_jobs.errors import IntegrityError
from faceid_jobs.search.stored import (
    hits_parquet,
    list_runs,
    read_result_file,
    read_results,
    result_keys,
    write_results,
)

HIT = {"video": "/archive/secret-meeting.mp4", "timestamp_s": 1.5, "frame": 36, "bbox": [1, 2, 3, 4],
       "similarity": 0.7, "face_id": "f1", "liveness": None, "quality": 0.5}
RESULT = {"query": {"photo": "/photos/suspect.jpg", "bbox": [0, 0, 9, 9], "det_score": 0.9},
          "hits": [HIT, HIT | {"face_id": "f2", "similarity": 0.6}], "index": {"build_id": "v3"}}
DOCUMENT = {"flow_run_id": "run-1", "results": [RESULT, RESULT | {"hits": []}], "failures": []}


def test_search_hits_become_parquet_rows():
    table = pq.read_table(io.BytesIO(hits_parquet(DOCUMENT["results"])))
    assert table.num_rows == 2
    assert table.column("rank").to_pylist() == [1, 2]
    assert table.column("index_build_id").to_pylist() == ["v3", "v3"]
    assert table.column("liveness").to_pylist() == [None, None]


def test_results_are_sealed_and_read_back_with_the_key(make_workspace):
    ws = make_workspace()
    keys = write_results(ws, "run-1", DOCUMENT)
    assert keys == result_keys("run-1")
    for key in keys.values():  # what a reader of the store without the key sees
        raw = ws.store.get(key)
        assert b"secret-meeting" not in raw and b"suspect" not in raw and b"PAR1" not in raw
    assert read_results(ws, "run-1") == {"format": 1} | DOCUMENT
    hits = pq.read_table(io.BytesIO(read_result_file(ws, "run-1", "hits.parquet")))
    assert hits.column("video").to_pylist() == [HIT["video"]] * 2
    assert list_runs(ws.store) == ["run-1"]


def test_moved_swapped_or_changed_result_files_do_not_open(make_workspace):
    ws = make_workspace()
    keys = write_results(ws, "run-1", DOCUMENT)
    write_results(ws, "run-2", DOCUMENT | {"flow_run_id": "run-2", "results": []})
    # Moved under another run: the header names run-1.
    ws.store.put(result_keys("run-2")["json"], ws.store.get(keys["json"]))
    with pytest.raises(IntegrityError):
        read_results(ws, "run-2")
    # The Parquet file put in the JSON's place: the header names hits.parquet.
    ws.store.put(keys["json"], ws.store.get(keys["parquet"]))
    with pytest.raises(IntegrityError):
        read_results(ws, "run-1")
    # One byte changed.
    raw = bytearray(ws.store.get(keys["parquet"]))
    raw[-20] ^= 1
    ws.store.put(keys["parquet"], bytes(raw))
    with pytest.raises(IntegrityError):
        read_result_file(ws, "run-1", "hits.parquet")


def test_another_store_and_key_cannot_read_them(make_workspace):
    """The files, with their data keys, copied into a store of another key: nothing opens."""
    ws = make_workspace()
    write_results(ws, "run-1", DOCUMENT)
    stranger = make_workspace()
    for key in ws.store.list(""):
        if key.startswith(("queries/", "keys/data/")):
            stranger.store.put(key, ws.store.get(key))
    with pytest.raises(IntegrityError):
        read_results(stranger, "run-1")
