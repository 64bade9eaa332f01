"""`reprocess-archive` run for real on a Prefect test server, with the real models on CPU."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.flows.conftest import model_loads
from tests.flows.util import (
    artifacts,
    face_rows,
    markdown_json,
    run_reprocess_flow,
    snapshot,
    table_rows,
    task_runs,
)

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("prefect_server")]

SUMMARY_KEYS = {"videos", "videos_unchanged", "chunks", "frames_sampled", "faces", "faces_in_store", "indexed_vectors",
                "video_seconds", "wall_seconds", "video_seconds_per_second", "failures", "index",
                "orchestrator", "flow_run_id", "interrupted", "bad_files", "skipped_files", "copies", "ok"}


def test_two_clips_complete_with_one_task_per_chunk(first_run):
    state, summary = first_run["state"], first_run["summary"]
    assert state.is_completed(), state.message
    assert set(summary) == SUMMARY_KEYS and summary["orchestrator"] == "prefect"
    # 4 s at 23.976 fps = 96 frames per clip; 2-second chunks of 48 frames: 2 chunks per clip.
    assert summary["videos"] == 2
    assert summary["chunks"] == {"done": 4, "skipped": 0, "failed": 0}
    assert summary["frames_sampled"] == 16  # 2 frames per second of 8 s
    assert summary["faces"] > 0 and summary["faces_in_store"] == summary["faces"]
    # index_by "track" (the default) indexes a few vectors per track, "face" every face.
    assert 0 < summary["indexed_vectors"] <= summary["faces"]
    assert summary["index"]["published"] and summary["index"]["version"] is not None
    assert summary["failures"] == []
    runs = task_runs(summary["flow_run_id"])
    chunk_runs = [r for r in runs if r.name.startswith("chunk-")]
    assert sorted(r.name for r in chunk_runs) == ["chunk-0-a.mp4", "chunk-0-b.mp4", "chunk-1-a.mp4",
                                                  "chunk-1-b.mp4"]
    assert all("gpu" in r.tags and r.state.is_completed() for r in chunk_runs)
    assert sum(r.name.startswith("merge-index") for r in runs) == 1


def test_models_load_once_per_worker_not_per_chunk(first_run):
    from faceid_jobs.flows.common import cores

    # At most one set per thread running chunks side by side, never one per chunk (4 here).
    assert 1 <= first_run["loads"] <= min(cores(), 3)


def test_artifacts_hold_the_summary(first_run):
    summary = first_run["summary"]
    found = artifacts(summary["flow_run_id"])
    assert {"faceid-reprocess-summary", "faceid-reprocess-report"} <= set(found)
    rows = table_rows(found["faceid-reprocess-summary"])
    by_video = {Path(r["video"]).name: r for r in rows}
    assert set(by_video) == {"a.mp4", "b.mp4", "(all)"}
    assert by_video["(all)"]["done"] == 4 and by_video["(all)"]["faces"] == summary["faces"]
    assert by_video["a.mp4"]["chunks"] == 2 and by_video["a.mp4"]["status"] == "ok"
    assert sum(by_video[v]["faces"] for v in ("a.mp4", "b.mp4")) == summary["faces"]
    report = found["faceid-reprocess-report"].data
    assert markdown_json(report) == summary
    # discover-people ran after label-faces and its top people were published.
    assert any(r.name.startswith("discover-people") and r.state.is_completed()
               for r in task_runs(summary["flow_run_id"]))
    people = table_rows(found["faceid-people-summary"])
    assert people and all(set(p) >= {"id", "name", "faces", "appearances", "videos"} for p in people)
    assert [p["faces"] for p in people] == sorted((p["faces"] for p in people), reverse=True)
    assert sum(p["faces"] for p in people) <= summary["faces"]


def test_rerun_skips_every_chunk_and_leaves_the_store_byte_identical(first_run, clips, flow_settings):
    store = first_run["store"]
    loads = model_loads()
    state, summary = run_reprocess_flow([clips], flow_settings, store)
    assert state.is_completed(), state.message
    assert summary["chunks"] == {"done": 0, "skipped": 4, "failed": 0}
    assert summary["frames_sampled"] == 0 and summary["faces"] == 0
    assert summary["faces_in_store"] == first_run["summary"]["faces"]
    # The merge found nothing new: no version published, the same one current.
    assert summary["index"]["version"] == first_run["summary"]["index"]["version"]
    assert not summary["index"]["published"]
    assert snapshot(store) == first_run["files"]
    assert model_loads() == loads  # models reused from the pool


def test_corrupt_files_fail_alone_and_the_flow_ends_failed(bad_folder, flow_settings, tmp_path):
    state, summary = run_reprocess_flow([bad_folder], flow_settings, tmp_path / "store")
    assert state.is_failed()
    assert summary["videos"] == 3
    # a.mp4: 2 chunks; truncated.avi: chunk 0 decodes, chunk 1 stops at the cut; garbage.mp4: no chunks.
    assert summary["chunks"] == {"done": 3, "skipped": 0, "failed": 1}
    failures = {(Path(f["video"]).name, f["chunk"]): f["error"] for f in summary["failures"]}
    assert set(failures) == {("truncated.avi", 1), ("garbage.mp4", None)}
    assert "truncated" in failures[("truncated.avi", 1)]
    assert "not a readable video" in failures[("garbage.mp4", None)]
    assert "truncated.avi#1" in state.message and "garbage.mp4" in state.message
    # The good chunks are stored and indexed; corrupt input is not retried.
    assert summary["faces_in_store"] == summary["faces"] > 0
    assert 0 < summary["indexed_vectors"] <= summary["faces"]
    runs = {r.name: r for r in task_runs(summary["flow_run_id"])}
    assert runs["chunk-1-truncated.avi"].state.is_failed() and runs["chunk-1-truncated.avi"].run_count == 1
    assert runs["plan-video-garbage.mp4"].run_count == 1
    rows = {Path(r["video"]).name: r for r in table_rows(artifacts(summary["flow_run_id"])
                                                          ["faceid-reprocess-summary"])}
    assert rows["truncated.avi"]["status"] == "failed" and rows["truncated.avi"]["failed"] == 1
    assert rows["a.mp4"]["status"] == "ok"


def test_bad_files_alone_complete_the_flow_when_they_may(flow_settings, tmp_path):
    import dataclasses
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "garbage.mp4").write_bytes(os.urandom(40_000))
    (folder / "poster.jpg").write_bytes(b"not looked at")
    settings = dataclasses.replace(flow_settings, fail_on_bad_files=False)
    state, summary = run_reprocess_flow([folder], settings, tmp_path / "store")
    assert state.is_completed(), state.message
    assert summary["ok"] and summary["bad_files"] == [str(folder / "garbage.mp4")]
    assert [f["bad_file"] for f in summary["failures"]] == [True]
    assert summary["skipped_files"] == [{"path": str(folder / "poster.jpg"), "reason": "photo"}]


def test_a_transient_store_error_is_retried(clips, flow_settings, tmp_path, monkeypatch):
    from faceid_jobs.errors import StoreTransientError
    from faceid_jobs.storage.local import LocalStore

    real_put = LocalStore.put
    puts = Counter()

    def flaky_put(self, key, data):
        if key.endswith("chunk-000001.parquet"):
            puts[key] += 1
            if puts[key] == 1:
                raise StoreTransientError(f"{self.uri}/{key}: cannot write (SlowDown)")
        return real_put(self, key, data)

    monkeypatch.setattr(LocalStore, "put", flaky_put)
    state, summary = run_reprocess_flow([clips / "a.mp4"], flow_settings, tmp_path / "store")
    assert state.is_completed(), state.message
    assert summary["chunks"] == {"done": 2, "skipped": 0, "failed": 0}
    assert list(puts.values()) == [2]  # failed once, written on the retry
    runs = {r.name: r for r in task_runs(summary["flow_run_id"])}
    assert runs["chunk-1-a.mp4"].run_count == 2 and runs["chunk-1-a.mp4"].state.is_completed()
    assert runs["chunk-0-a.mp4"].run_count == 1
    assert (tmp_path / "store").joinpath(*next(iter(puts)).split("/")).is_file()


def test_local_dask_cluster_gives_the_same_rows_as_threads(first_run, clips, flow_settings, tmp_path):
    from faceid_jobs.flows.common import make_task_runner
    from faceid_jobs.flows.reprocess import reprocess_archive

    loads = model_loads()
    flow = reprocess_archive.with_options(task_runner=make_task_runner(dask_local=2))
    state, summary = run_reprocess_flow([clips], flow_settings, tmp_path / "store", flow=flow)
    assert state.is_completed(), state.message
    assert summary["chunks"] == {"done": 4, "skipped": 0, "failed": 0}
    # Every model ran in the Dask worker processes, none in this one.
    assert model_loads() == loads
    dask_rows = face_rows(tmp_path / "store", flow_settings)
    thread_rows = face_rows(first_run["store"], flow_settings)
    assert dask_rows.num_rows == thread_rows.num_rows == first_run["summary"]["faces"]
    for column in ("face_id", "video_fingerprint", "chunk_index", "frame_index", "analysis_id",
                   "detector_id", "embedder_id", "liveness_id"):
        assert dask_rows.column(column).to_pylist() == thread_rows.column(column).to_pylist(), column
    for column in ("bbox", "landmarks", "det_score", "embedding", "liveness"):
        a = np.asarray(dask_rows.column(column).to_pylist(), np.float32)
        b = np.asarray(thread_rows.column(column).to_pylist(), np.float32)
        np.testing.assert_allclose(a, b, atol=1e-4, err_msg=column)


def test_people_discovery_flow_rebuilds_and_publishes_the_top_people(first_run, store_copy, flow_settings):
    from faceid_jobs.flows.common import settings_overrides
    from faceid_jobs.flows.people import people_discovery

    before = table_rows(artifacts(first_run["summary"]["flow_run_id"])["faceid-people-summary"])
    state = people_discovery(store=str(store_copy), settings=settings_overrides(flow_settings), rebuild=True,
                             return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["people"]["published"] and result["people"]["rebuild"]
    assert result["people"]["faces"] == first_run["summary"]["faces"]  # every stored face belongs to someone
    rows = table_rows(artifacts(result["flow_run_id"])["faceid-people-summary"])
    # Same records, same settings: a rebuild finds the same people under the same ids.
    assert [(r["id"], r["faces"]) for r in rows] == [(r["id"], r["faces"]) for r in before]
    assert result["listed"] == len(rows)
def test_people_discovery_flow_refuses_while_a_forget_is_pending(first_run, store_copy, flow_settings):
    """A forget interrupted before it finished: the flow fails with one line naming the command that
    finishes it, and publishes no people version."""
    from faceid_jobs.flows.common import settings_overrides
    from faceid_jobs.flows.people import people_discovery
    from faceid_jobs.identity.intent import new_intent, save_intent
    from faceid_jobs.models import embedder_id
    from faceid_jobs.storage.layout import PEOPLE_PREFIX
    from faceid_jobs.workspace import open_workspace

    settings = flow_settings.replace(store=str(store_copy))
    ws = open_workspace(settings)
    before = sorted(ws.store.list(PEOPLE_PREFIX))
    intent = new_intent("Rachel", embedder_id(settings), settings.identity_threshold, True)
    save_intent(ws, intent)
    state = people_discovery(store=str(store_copy), settings=settings_overrides(flow_settings), rebuild=True,
                             return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert "faceid-jobs forget --resume" in str(error) and intent.key in str(error), error
    assert sorted(ws.store.list(PEOPLE_PREFIX)) == before


