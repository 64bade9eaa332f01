"""`keys rotate` and `keys rotate --reencrypt` killed (SIGKILL) at seeded random moments, then run again.

The store is the pristine one of `conftest.py` (Ross and Rachel enrolled, two cuts processed) plus
`RUNS` stored search-photos results (two sealed objects, two data keys each), so a rotation has 60 (S3)
to 320 (local) data keys to re-wrap or re-encrypt and a kill lands mid-pass. The moments are spread
over the work: seed k of n picks a moment in the k-th n-th of the time an uninterrupted rotation of
the same store holds its lease (measured once per kind of store and rotation).
After the re-run: one new key (the lease's: never a third), every data key under it, no data key
that no object names beyond those of the pristine store (but the one a kill between a key's put and its
object's put leaves, under the new KEK), every stored result opens, and search, find and people answer
as before the rotation (a rotation changes no answer). Local and S3 stores; about 15 s a test.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from faceid_jobs.config import load_settings
from faceid_jobs.crypto.envelope import stored_kek_ids
from faceid_jobs.crypto.lease import read_lease
from faceid_jobs.crypto.marker import read_marker
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import rotation_lease_key
from tests.cli.runner import EXE
from tests.faults.conftest import cli_json, store_env
from tests.faults.stores import copy_to_s3, new_bucket, orphan_keys

pytestmark = [pytest.mark.faults, pytest.mark.models, pytest.mark.slow]

RUNS = {"local": 150, "s3": 20}  # fewer on S3, where each object costs a few requests
_WORK_S: dict[tuple[str, bool], float] = {}  # (where, reencrypt) → seconds an uninterrupted one holds its lease
_BEFORE: dict[str, object] = {}  # the answers of the pristine store (every copy's before its rotation)


def _answers(built) -> dict:
    """What a user sees: the search hits for Ross's photo and where Rachel appears."""
    return {"search": cli_json(["search", built.root / "faces" / "Ross.png"], built.env)["hits"],
            "find": cli_json(["find", "Rachel"], built.env)["appearances"]}


def _documents(env) -> dict[str, dict]:
    runs = RUNS["s3" if env["FACEID_JOBS_STORE"].startswith("s3://") else "local"]
    return {f"run-{i:03d}": {"results": [], "failures": [], "n": i} for i in range(runs)}


def _with_results(env) -> Store:
    """Store `RUNS` search results in the store of `env` (through the library, as the flow stores them)."""
    from faceid_jobs.search.stored import write_results
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(load_settings(environ=env))
    for run_id, document in _documents(env).items():
        write_results(ws, run_id, document)
    return ws.store


def _rotate(env, reencrypt: bool) -> subprocess.Popen:
    args = [str(EXE), "keys", "rotate", *(["--reencrypt"] if reencrypt else [])]
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    return subprocess.Popen(args, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _until_lease(store: Store, child: subprocess.Popen) -> float:
    deadline = time.monotonic() + 60
    while not store.exists(rotation_lease_key()):
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "no lease in 60 s"
        time.sleep(0.002)
    return time.monotonic()


def _work_seconds(where: str, reencrypt: bool, make_env) -> float:
    """How long an uninterrupted rotation of such a store holds its lease (measured once, on the store of
    `make_env()`): taking it is its first step, releasing it its last."""
    if (where, reencrypt) not in _WORK_S:
        clean_env = make_env()
        store = _with_results(clean_env)
        child = _rotate(clean_env, reencrypt)
        leased = _until_lease(store, child)
        while store.exists(rotation_lease_key()):
            time.sleep(0.002)
        _WORK_S[where, reencrypt] = time.monotonic() - leased
        assert child.wait(timeout=300) == 0, child.stderr.read()
    return _WORK_S[where, reencrypt]


# Locally both halves of the work of each kind; on S3 (slower: fewer tests) the second half of a
# re-wrap and the first of a re-encryption.
CASES = [*(("local", reencrypt, k, 2) for reencrypt in (False, True) for k in range(2)),
         ("s3", False, 1, 2), ("s3", True, 0, 2)]


@pytest.mark.parametrize(("built", "reencrypt", "k", "n"), CASES, indirect=["built"],
                         ids=[f"{w}-{'reencrypt' if r else 'rewrap'}-{k + 1}of{n}" for w, r, k, n in CASES])
def test_rotation_killed_at_a_random_moment_converges(built, pristine_store, tmp_path_factory, reencrypt, k, n):
    where = "s3" if built.env["FACEID_JOBS_STORE"].startswith("s3://") else "local"
    if "answers" not in _BEFORE:  # any copy's, before its rotation: they are all the pristine store's
        _BEFORE["answers"] = _answers(built)
    work = _work_seconds(where, reencrypt, lambda: _clean_env(built, pristine_store, tmp_path_factory))
    store = _with_results(built.env)
    orphans_before = orphan_keys(store)
    old = read_marker(store)
    moment = work * (k + random.Random(f"{where}-{reencrypt}-{k}").random()) / n

    child = _rotate(built.env, reencrypt)
    _until_lease(store, child)
    time.sleep(moment)
    exited = child.poll() is not None
    child.kill()  # SIGKILL
    child.wait(timeout=60)
    lease = read_lease(store)
    hit = {"where": where, "reencrypt": reencrypt, "moment_s": round(moment, 3), "work_s": round(work, 3),
           "exited_before": exited, "data_keys_at_kill": Counter(kek for _, kek in stored_kek_ids(store)),
           "lease": bool(lease)}
    print("kill:", hit)
    if lease is not None:
        new = lease.new_kek
        rerun = cli_json(["keys", "rotate", *(["--reencrypt"] if reencrypt else [])], built.env)
        assert rerun["new_key_id"] == new  # the lease's key: never a third one
    else:  # the kill came after the rotation ended
        new = read_marker(store)
        assert new != old
    status = cli_json(["keys", "status"], built.env)
    assert status["key_id"] == new and status["rotation"] is None and set(status["data_keys"]) == {new}
    assert sorted(p.name for p in built.root.glob("key.json*")) == ["key.json", f"key.json.retired-{old}"]
    # A kill between a data key's put and its object's put (the key goes first) leaves that one key naming
    # nothing; under the new KEK it opens nothing of the old data. No other key is left unnamed.
    left = orphan_keys(store) - orphans_before
    assert len(left) <= 1 and all(kek == new for ref, kek in stored_kek_ids(store) if ref in left), left
    _opens_every_result(built.env)
    assert _answers(built) == _BEFORE["answers"]


def _clean_env(built, pristine, tmp_path_factory) -> dict[str, str]:
    """The env of another copy of the pristine store, on the same kind of store as `built`'s."""
    on_s3 = built.env["FACEID_JOBS_STORE"].startswith("s3://")
    root = tmp_path_factory.mktemp("clean-rotation") / "copy"
    shutil.copytree(pristine.root, root, symlinks=True,
                    ignore=shutil.ignore_patterns(*(("state", "store") if on_s3 else ("state",))))
    env = store_env(root, Path(built.env["FACEID_JOBS_WEIGHTS_DIR"]))
    if on_s3:
        env["FACEID_JOBS_STORE"] = copy_to_s3(pristine.store, new_bucket("clean-rotation"))
    return env


def _opens_every_result(env) -> None:
    """Every stored result opens with the current key alone and holds what was stored."""
    from faceid_jobs.search.stored import read_results
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(load_settings(environ=env))
    for run_id, document in _documents(env).items():
        assert {k: v for k, v in read_results(ws, run_id).items() if k in document} == document
