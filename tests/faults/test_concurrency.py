"""Concurrent writers and readers on one store: consistent results, readers never fail."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from faceid_jobs.config import Settings
from faceid_jobs.index import list_versions, load_manifest, open_index
from faceid_jobs.records.parquet import parquet_to_table
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.storage.layout import record_prefix
from faceid_jobs.workspace import open_workspace
from tests.cli.runner import EXE, cut_clip, run

pytestmark = [pytest.mark.faults, pytest.mark.models, pytest.mark.slow]


def test_two_overlapping_process_runs_and_readers(tmp_path, weights_dir, friends_clip, portraits):
    (tmp_path / "a").mkdir()
    a = cut_clip(friends_clip, tmp_path / "a" / "shots12.mp4", 6.0)
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    cut_clip(friends_clip, b_dir / "shots34.mp4", 6.0, start_frame=270)
    os.link(a, b_dir / "shots12-copy.mp4")  # the same video in both sources
    env = {"FACEID_JOBS_STORE": str(tmp_path / "store"), "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json"),
           "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "PREFECT_HOME": str(tmp_path / "prefect")}
    assert run(["keys", "init"], env).returncode == 0
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    args = ["--sample-fps", "2", "--chunk-seconds", "2", "--json"]
    procs = [subprocess.Popen([str(EXE), "process", str(src), *args], env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for src in (tmp_path / "a", b_dir)]
    settings = Settings(store=env["FACEID_JOBS_STORE"], key_file=env["FACEID_JOBS_KEY_FILE"])
    ws = open_workspace(settings)
    reads, failures = [], []
    while any(p.poll() is None for p in procs):
        time.sleep(0.3)
        if list_versions(ws.store):
            try:
                idx = open_index(ws.store, ws.keys)
                assert len(idx) == load_manifest(ws.store, ws.keys, idx.info.version).vectors
                reads.append(idx.info.version)
            except Exception as exc:  # a reader must never fail
                failures.append(repr(exc))
    outs = [p.communicate() for p in procs]
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr  # one PREFECT_HOME for both: quiet all the same
    assert not failures, failures
    assert reads == sorted(reads)
    versions = list_versions(ws.store)
    assert versions == list(range(1, len(versions) + 1))

    # One row per face: every face id once, over the two distinct videos.
    ids = []
    entries = list_entries(ws.store, ws.keys)
    assert len(entries) == 2
    for entry in entries:
        for key in ws.store.list(record_prefix(entry.analysis_id, entry.fingerprint)):
            ids += parquet_to_table(ws.store.get(key), key, ["face_id"], cipher=ws.cipher)["face_id"].to_pylist()
    assert ids and len(ids) == len(set(ids))
    final = open_index(ws.store, ws.keys)
    summaries = [json.loads(o) for o, _ in outs]
    assert len(final) == max(s["indexed_vectors"] for s in summaries)


def test_parallel_searches_equal_single_threaded(make_workspace):
    from faceid_jobs.index import merge_index
    from tests.index.test_sharded import add_video, unit

    rng = np.random.default_rng(5)
    ws = make_workspace()
    for i in range(3):
        add_video(ws, f"s1-{i}", unit(rng, 40))
        merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    index = open_index(ws.store, ws.keys)
    queries = unit(rng, 200)
    expected = [index.search(q[None], 10) for q in queries]
    barrier = threading.Barrier(8)

    def worker(_):
        barrier.wait()
        return [index.search(q[None], 10) for q in queries]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    for got in results:
        for (s1, r1), (s2, r2) in zip(got, expected, strict=True):
            assert np.array_equal(r1, r2) and np.allclose(s1, s2)
