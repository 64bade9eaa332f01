"""The core job with the store and the footage on S3 (moto server on 127.0.0.1), through the CLI."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from faceid_jobs.storage import open_store
from faceid_jobs.storage.s3 import make_client
from tests.cli.runner import cut_clip, run
from tests.friends import shot_of

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def bucket(s3_server):
    name = "faceid-e2e"
    make_client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def env(s3_server, bucket, weights_dir, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    return {**s3_server, "FACEID_JOBS_STORE": f"s3://{bucket}/store", "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
            "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(keys / "key.json")}


@pytest.fixture(scope="module")
def processed(env, bucket, friends_clip, tmp_path_factory):
    """A 6 s cut (shots 1-2) uploaded to the bucket, then processed from S3 into the S3 store."""
    local = cut_clip(friends_clip, tmp_path_factory.mktemp("cut") / "cut.mp4", 6.0)
    make_client().upload_file(str(local), bucket, "footage/day1/cut.mp4")
    result = run(["process", f"s3://{bucket}/footage/", "--sample-fps", "2", "--chunk-seconds", "3", "--json"],
                 env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_process_and_search_on_s3(env, processed, portraits, bucket):
    assert processed["chunks"]["done"] == 2 and processed["faces"] > 0
    assert processed["faces_in_store"] == processed["faces"]
    assert 0 < processed["indexed_vectors"] < processed["faces"]  # index_by = "track"
    assert stat.S_IMODE(os.stat(env["FACEID_JOBS_KEY_FILE"]).st_mode) == 0o600
    result = run(["search", portraits["Rachel"], "--json", "--top-k", "50"], env)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)["hits"]
    assert hits and all(h["video"] == f"s3://{bucket}/footage/day1/cut.mp4" for h in hits)
    assert {shot_of(h["frame"]) for h in hits} == {1}


def test_nothing_in_the_bucket_is_plaintext(env, processed, bucket, portraits):
    store = open_store(env["FACEID_JOBS_STORE"])
    keys = list(store.list(""))
    assert any(k.startswith("records/") for k in keys) and any(k.startswith("index/shards/") for k in keys)
    # A known embedding: the query face's vector, as float32 bytes (any 16-byte run of it).
    query = json.loads(run(["search", portraits["Rachel"], "--json", "--top-k", "1", "--threshold", "0"],
                           env).stdout)
    assert query["hits"]
    from faceid_jobs.config import Settings
    from faceid_jobs.index import open_index
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(Settings(store=env["FACEID_JOBS_STORE"], key_file=env["FACEID_JOBS_KEY_FILE"]))
    index = open_index(ws.store, ws.keys)
    vectors = index._indexes[0].reconstruct_n(0, 3)
    needles = [np.asarray(v, np.float32).tobytes()[16:48] for v in vectors]
    for key in keys:
        blob = store.get(key)
        assert not blob.startswith(b"PAR1") and not blob.endswith(b"PAR1"), key
        assert b"IxFI" not in blob and b"IwFl" not in blob and b"IvFl" not in blob, key  # FAISS headers
        assert not any(n in blob for n in needles), key


def test_tampered_shard_and_wrong_key_fail_search(env, processed, portraits, tmp_path):
    store = open_store(env["FACEID_JOBS_STORE"])
    [shard_key] = [k for k in store.list("index/shards/")]
    good = store.get(shard_key)
    try:
        flipped = bytearray(good)
        flipped[len(flipped) // 2] ^= 0x40
        store.put(shard_key, bytes(flipped))
        result = run(["search", portraits["Rachel"]], env)
        assert result.returncode == 4 and ("tampered" in result.stderr or "checksum" in result.stderr)
        assert result.stderr.strip().count("\n") == 0
        store.put(shard_key, good[: len(good) // 2])
        result = run(["search", portraits["Rachel"]], env)
        assert result.returncode == 4 and shard_key in result.stderr
    finally:
        store.put(shard_key, good)
    other = {**env, "FACEID_JOBS_KEY_FILE": str(tmp_path / "other.json")}
    assert run(["keys", "init"], other).returncode == 0
    result = run(["search", portraits["Rachel"]], other)
    assert result.returncode == 4 and "needs key" in result.stderr


def test_key_rotation_then_search_with_the_new_key_alone(env, processed, portraits):
    before = json.loads(run(["search", portraits["Rachel"], "--json"], env).stdout)["hits"]
    old_id = json.loads(run(["keys", "show", "--json"], env).stdout)["key_id"]
    result = run(["keys", "rotate", "--json"], env)
    assert result.returncode == 0, result.stderr
    rotation = json.loads(result.stdout)
    assert rotation["old_key_id"] == old_id and rotation["new_key_id"] != old_id and rotation["rewrapped"] > 0
    os.remove(rotation["retired_file"])  # the old key is gone for good
    assert json.loads(run(["keys", "show", "--json"], env).stdout)["key_id"] == rotation["new_key_id"]
    after = run(["search", portraits["Rachel"], "--json"], env)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["hits"] == before
    versions = json.loads(run(["index", "list", "--json"], env).stdout)["versions"]
    assert versions[-1]["kek_id"] == rotation["new_key_id"] and len(versions) >= 2
