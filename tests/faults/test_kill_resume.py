"""SIGKILL `faceid-jobs process` at random points, then finish: the store equals a clean run's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest

from faceid_jobs.config import Settings
from faceid_jobs.records.parquet import parquet_to_table
from faceid_jobs.storage import LocalStore
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.storage.layout import record_prefix
from faceid_jobs.workspace import open_workspace
from tests.cli.runner import EXE, run

pytestmark = [pytest.mark.faults, pytest.mark.models, pytest.mark.slow]

ARGS = ["--chunk-seconds", "3", "--sample-fps", "2"]


def env_for(base, weights_dir):
    return {"FACEID_JOBS_STORE": str(base / "store"), "FACEID_JOBS_KEY_FILE": str(base / "key.json"),
            "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
            "PREFECT_HOME": str(base / "prefect")}


def stored_face_ids(env) -> list[str]:
    ws = open_workspace(Settings(store=env["FACEID_JOBS_STORE"], key_file=env["FACEID_JOBS_KEY_FILE"]))
    ids: list[str] = []
    for entry in list_entries(ws.store, ws.keys):
        for key in ws.store.list(record_prefix(entry.analysis_id, entry.fingerprint)):
            ids += parquet_to_table(ws.store.get(key), key, ["face_id"], cipher=ws.cipher)["face_id"].to_pylist()
    return ids


def test_killed_runs_resume_to_the_clean_result(tmp_path, weights_dir, friends_clip, portraits):
    clean_env = env_for(tmp_path / "clean", weights_dir)
    clean = run(["process", friends_clip, *ARGS, "--json"], clean_env)
    assert clean.returncode == 0, clean.stderr
    clean_summary = json.loads(clean.stdout)
    clean_ids = stored_face_ids(clean_env)
    assert clean_ids and len(clean_ids) == len(set(clean_ids)) == clean_summary["faces_in_store"]

    env = env_for(tmp_path / "killed", weights_dir)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    rng = random.Random(8)
    kills = 0
    records = tmp_path / "killed" / "store" / "records"
    for _ in range(4):
        before = len(list(records.rglob("chunk-*.parquet")))
        proc = subprocess.Popen([str(EXE), "process", str(friends_clip), *ARGS, "--json"], env=full_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # A run takes a few seconds: kill it at a random moment after it stored a new chunk,
        # so every kill lands mid-run whatever the machine's speed.
        deadline = time.monotonic() + 120
        while (proc.poll() is None and time.monotonic() < deadline
               and len(list(records.rglob("chunk-*.parquet"))) <= before):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the runs finished before they could be killed; kill earlier"

    final = run(["process", friends_clip, *ARGS, "--json"], env)
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    ids = stored_face_ids(env)
    assert sorted(ids) == sorted(clean_ids)  # none doubled, none missing
    assert summary["faces_in_store"] == clean_summary["faces_in_store"]
    assert summary["indexed_vectors"] == clean_summary["indexed_vectors"]
    # Temp files a kill left behind are never listed (so never read), and the index answers.
    listed = list(LocalStore(tmp_path / "killed" / "store").list())
    assert listed and not [k for k in listed if ".tmp-" in k]
    search = run(["search", portraits["Ross"], "--json", "--top-k", "5"], env)
    assert search.returncode == 0, search.stderr
    clean_search = run(["search", portraits["Ross"], "--json", "--top-k", "5"], clean_env)
    assert [h["face_id"] for h in json.loads(search.stdout)["hits"]] == \
        [h["face_id"] for h in json.loads(clean_search.stdout)["hits"]]
