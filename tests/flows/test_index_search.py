"""`rebuild-index` and `search-photos` run for real on the Prefect test server."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.flows.util import artifacts, markdown_json, snapshot, table_rows

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("prefect_server")]


def _overrides(settings):
    from faceid_jobs.flows.common import settings_overrides

    return settings_overrides(settings)


def test_rebuild_index_publishes_only_what_changed(first_run, store_copy, flow_settings):
    from faceid_jobs.flows.index import rebuild_index

    before = snapshot(store_copy)
    state = rebuild_index(store=str(store_copy), settings=_overrides(flow_settings), return_state=True)
    result = state.result()
    assert state.is_completed()
    assert result["published"] is False
    assert result["index"]["version"] == first_run["summary"]["index"]["version"]
    assert snapshot(store_copy) == before

    # An index lost entirely is rebuilt from the catalogued records.
    shutil.rmtree(store_copy / "index")
    rebuilt = rebuild_index(store=str(store_copy), settings=_overrides(flow_settings))
    assert rebuilt["published"] is True
    assert rebuilt["index"]["vectors"] == first_run["summary"]["indexed_vectors"]
    found = artifacts(rebuilt["flow_run_id"])
    assert table_rows(found["faceid-index-summary"])[0]["version"] == rebuilt["index"]["version"]
    assert markdown_json(found["faceid-index-report"].data) == rebuilt


def test_search_photos_stores_and_returns_the_hits(first_run, store_copy, flow_settings, portraits, tmp_path):
    import pyarrow.parquet as pq

    from faceid_jobs.errors import IntegrityError
    from faceid_jobs.flows.search import search_photos
    from faceid_jobs.search.stored import list_runs, read_result_file, read_results
    from faceid_jobs.workspace import open_workspace

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((400, 400, 3), 200, np.uint8))
    photos = [str(portraits["Rachel"]), str(portraits["Chandler"]), str(blank)]
    state = search_photos(photos=photos, store=str(store_copy), settings=_overrides(flow_settings),
                          return_state=True)
    result = state.result(raise_on_failure=False)
    # The photo without a face fails alone; the run says so and ends Failed.
    assert state.is_failed() and "1 of 3" in state.message
    assert [f["photo"] for f in result["failures"]] == [str(blank)]
    assert "no face" in result["failures"][0]["error"]
    by_photo = {Path(r["query"]["photo"]).stem: r for r in result["results"]}
    assert set(by_photo) == {"Rachel", "Chandler"}
    # a.mp4 is shot 1 (Rachel and Joey), b.mp4 shot 2 (Monica and Chandler).
    assert by_photo["Rachel"]["hits"] and Path(by_photo["Rachel"]["hits"][0]["video"]).name == "a.mp4"
    assert by_photo["Chandler"]["hits"] and Path(by_photo["Chandler"]["hits"][0]["video"]).name == "b.mp4"

    run_id = result["flow_run_id"]
    assert result["keys"] == {"json": f"queries/{run_id}/results.json.bin",
                              "parquet": f"queries/{run_id}/hits.parquet.bin"}
    # Stored sealed: the files name no video, photo or person to a reader of the store without the key.
    for key in result["keys"].values():
        raw = (store_copy / key).read_bytes()
        assert not any(word in raw for word in (b"a.mp4", b"b.mp4", b"Rachel", b"similarity", b"PAR1"))
    ws = open_workspace(flow_settings.replace(store=str(store_copy)))
    stored = read_results(ws, run_id)
    assert stored["results"] == json.loads(json.dumps(result["results"], default=str))
    assert stored["failures"] == result["failures"]
    hits = pq.read_table(io.BytesIO(read_result_file(ws, run_id, "hits.parquet")))
    assert hits.num_rows == sum(len(r["hits"]) for r in result["results"])
    assert set(hits.column("photo").to_pylist()) == {photos[0], photos[1]}
    best = by_photo["Rachel"]["hits"][0]["similarity"]
    assert hits.column("similarity").to_pylist()[0] == pytest.approx(best, abs=1e-4)

    assert list_runs(ws.store) == [run_id]
    # A result file moved under another run id does not open there.
    other = store_copy / "queries" / "moved-run"
    other.mkdir()
    shutil.copy(store_copy / result["keys"]["json"], other / "results.json.bin")
    with pytest.raises(IntegrityError):
        read_results(ws, "moved-run")

    found = artifacts(run_id)
    assert len(table_rows(found["faceid-search-summary"])) == hits.num_rows
    assert "wall.png" in found["faceid-search-report"].data


def test_search_photos_refuses_while_a_forget_is_pending(first_run, store_copy, flow_settings, portraits):
    """A forget interrupted before it finished (its intent in the store): the flow fails at once,
    without retries, with one line naming `faceid-jobs forget --resume`, and stores no results."""
    import time

    from faceid_jobs.flows.search import search_photos
    from faceid_jobs.identity.intent import new_intent, save_intent
    from faceid_jobs.models import embedder_id
    from faceid_jobs.search.stored import list_runs
    from faceid_jobs.workspace import open_workspace

    settings = flow_settings.replace(store=str(store_copy))
    ws = open_workspace(settings)
    intent = new_intent("Rachel", embedder_id(settings), settings.identity_threshold, True)
    save_intent(ws, intent)
    started = time.monotonic()
    state = search_photos(photos=[str(portraits["Rachel"])], store=str(store_copy),
                          settings=_overrides(flow_settings), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert "faceid-jobs forget --resume" in str(error) and intent.key in str(error), error
    assert time.monotonic() - started < 30  # the store task's retries wait 2 s, 4 s: not taken
    assert list_runs(ws.store) == []
