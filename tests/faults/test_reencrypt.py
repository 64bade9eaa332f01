"""`keys rotate --reencrypt` on a real store (the clip, by the CLI): answers unchanged, the old key
plus old copies of `keys/data/*` open nothing current, and a run killed at any step converges."""

from __future__ import annotations

import shutil

import pytest

from tests.cli.runner import run
from tests.faults.conftest import cli_json

pytestmark = [pytest.mark.faults, pytest.mark.models]


def _untimed(value):
    """`value` without its "seconds" fields (how long a command took is no part of its answer)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _answers(built) -> dict:
    """What a user sees: search hits for Ross's photo, find for both enrolled names, the people."""
    faces = built.root / "faces"
    search = cli_json(["search", faces / "Ross.png"], built.env)
    return _untimed({"search": search["hits"],
                     "find": {name: cli_json(["find", name], built.env) for name in ("Ross", "Rachel")},
                     "people": cli_json(["people"], built.env)})


def _owner(built):
    """The key holder's workspace on the built store, through the library."""
    from faceid_jobs.crypto.envelope import DataKeys
    from faceid_jobs.crypto.keys import Keyring, load_key_file
    from faceid_jobs.crypto.parquet_crypto import RecordCipher
    from faceid_jobs.storage.local import LocalStore
    from faceid_jobs.workspace import Workspace

    keys = DataKeys(LocalStore(built.store), Keyring([load_key_file(built.root / "key.json")]))
    return Workspace(keys.store, keys, RecordCipher(keys))


def _status(env) -> dict:
    return cli_json(["keys", "status"], env)


def _settled(built, old_key_id: str) -> None:
    """One key, no lease, no data key of the old KEK; `index verify` passes."""
    status = _status(built.env)
    assert status["rotation"] is None and status["key_id"] != old_key_id
    assert set(status["data_keys"]) == {status["key_id"]}
    verified = run(["index", "verify"], built.env)
    assert verified.returncode == 0, verified.stderr


def test_reencrypt_keeps_every_answer_and_the_old_key_opens_nothing_current(built, pristine_store, tmp_path):
    from faceid_jobs.crypto.envelope import DataKeys
    from faceid_jobs.crypto.keys import Keyring, load_key_file
    from faceid_jobs.crypto.parquet_crypto import RecordCipher
    from faceid_jobs.errors import IntegrityError
    from faceid_jobs.index.manifest import load_manifest
    from faceid_jobs.index.shard import read_shard
    from faceid_jobs.records.parquet import parquet_to_table
    from faceid_jobs.search.stored import read_results, write_results
    from faceid_jobs.storage.local import LocalStore
    from faceid_jobs.workspace import Workspace

    before = _answers(built)
    assert before["search"] and before["find"]["Ross"]["appearances"]
    old_key_id = _status(built.env)["key_id"]
    document = {"flow_run_id": "run-1", "results": [], "failures": [{"photo": "p.jpg", "error": "no face"}]}
    write_results(_owner(built), "run-1", document)  # what a `search-photos` flow run leaves
    # The attacker's loot: the whole store and the key file as they were before.
    loot = tmp_path / "loot"
    shutil.copytree(built.store, loot / "store")
    shutil.copy2(built.root / "key.json", loot / "key.json")

    result = cli_json(["keys", "rotate", "--reencrypt"], built.env)
    done = result["reencrypted"]
    for kind in ("records", "labels", "gallery entries", "gallery versions", "people versions",
                 "query results", "catalog entries", "index shards"):
        assert done[kind] > 0, (kind, done)
    assert read_results(_owner(built), "run-1") == {"format": 1} | document
    assert result["old_keys_deleted"] > 0 and result["audit_keys_kept"] == 1
    assert result["index_version"] and result["seconds"] > 0
    assert _answers(built) == before
    _settled(built, old_key_id)
    assert run(["index", "build"], built.env).returncode == 0  # nothing pending, no rollback reported
    # The sources marks' key was re-wrapped, not replaced: the processed videos are still skipped unread.
    again = cli_json(["process", pristine_store.root / "videos", "--sample-fps", "2", "--chunk-seconds", "1"],
                     built.env)
    assert again["videos"] == again["videos_unchanged"] == 2

    # Current objects + every old data key object, opened with the old key, through our own readers.
    mixed = tmp_path / "mixed"
    shutil.copytree(built.store, mixed)
    for old in (loot / "store" / "keys" / "data").glob("*.json"):
        shutil.copy2(old, mixed / "keys" / "data" / old.name)
    old_kek = load_key_file(loot / "key.json")
    attacker = DataKeys(LocalStore(mixed), Keyring([old_kek]))
    cipher = RecordCipher(attacker)
    records = sorted(p.relative_to(mixed).as_posix() for p in (mixed / "records").rglob("*.parquet"))
    assert records
    # Control: the same readers do open the looted copies with the looted keys.
    looted = DataKeys(LocalStore(loot / "store"), Keyring([old_kek]))
    assert parquet_to_table((loot / "store" / records[0]).read_bytes(), records[0], None, RecordCipher(looted))
    for key in records:
        with pytest.raises(IntegrityError):
            parquet_to_table((mixed / key).read_bytes(), key, None, cipher)
    labels = [p.relative_to(mixed).as_posix() for p in (mixed / "labels").rglob("*.parquet")]
    assert labels
    for key in labels:
        with pytest.raises((IntegrityError, OSError, ValueError)):
            cipher.open((mixed / key).read_bytes()).read()
    with pytest.raises(IntegrityError):
        load_manifest(attacker.store, attacker)
    with pytest.raises(IntegrityError):
        read_results(Workspace(attacker.store, attacker, cipher), "run-1")
    owner = DataKeys(LocalStore(built.store), Keyring([load_key_file(built.root / "key.json")]))
    manifest = load_manifest(owner.store, owner)
    for ref in manifest.shards:
        with (mixed / ref.key).open("rb") as f, pytest.raises(IntegrityError):
            read_shard(f, attacker, ref)

    # The old key file alone on the new store: refused up front.
    old_env = built.env | {"FACEID_JOBS_KEY_FILE": str(loot / "key.json")}
    refused = run(["search", built.root / "faces" / "Ross.png"], old_env)
    assert refused.returncode == 4 and f"needs key {result['new_key_id']}" in refused.stderr, refused.stderr
    assert "hits" not in refused.stdout and "Traceback" not in refused.stderr


# Every step on a local store; on S3 the kill after the first record file (mid-way, with writers refused).
@pytest.mark.parametrize(("built", "step"), [("local", "reencrypt-record"), ("local", "reencrypt-index"),
                                             ("local", "reencrypt-swept"), ("s3", "reencrypt-record")],
                         indirect=["built"])
def test_reencrypt_killed_at_a_step_converges_on_a_rerun(built, step):
    before = _answers(built)
    old_key_id = _status(built.env)["key_id"]
    crashed = run(["keys", "rotate", "--reencrypt"], built.env | {"FACEID_JOBS_TEST_CRASH_AT": step})
    assert crashed.returncode == 137, (crashed.stdout, crashed.stderr)
    rotation = _status(built.env)["rotation"]
    assert rotation["reencrypt"] is True and rotation["old_kek"] == old_key_id
    if step == "reencrypt-record":
        # Writers refuse while it is pending; a plain rotation does not take it over.
        enrolled = run(["enroll", "Ross", built.root / "faces" / "Ross.png", "--replace"], built.env)
        assert enrolled.returncode != 0 and "keys rotate --reencrypt" in enrolled.stderr, enrolled.stderr
        plain = run(["keys", "rotate"], built.env)
        assert plain.returncode == 2 and "--reencrypt" in plain.stderr, plain.stderr
        # Readers still answer (both keys are on the keyring meanwhile).
        assert cli_json(["search", built.root / "faces" / "Ross.png"], built.env)["hits"] == before["search"]
    rerun = run(["keys", "rotate", "--reencrypt"], built.env)  # as a user runs it: the summary
    assert rerun.returncode == 0, rerun.stderr
    assert f"rotated {old_key_id} -> {rotation['new_kek']} and re-encrypted" in rerun.stdout
    assert "old data keys deleted" in rerun.stdout and "audit key kept" in rerun.stdout
    assert _status(built.env)["key_id"] == rotation["new_kek"]  # the same new key: never a third one
    assert _answers(built) == before
    _settled(built, old_key_id)


def test_reencrypt_during_an_interrupted_forget_then_the_forget_finishes(built):
    """A forget killed after its purge leaves its intent and stale marks: both are re-encrypted, and
    `forget --resume` then finishes under the new key (Ross no longer found)."""
    from faceid_jobs.identity.intent import pending_intents
    from faceid_jobs.storage.local import LocalStore

    faces = built.root / "faces"
    crashed = run(["forget", "Ross", "--purge-appearances"], built.env | {"FACEID_JOBS_TEST_CRASH_AT": "purged"})
    assert crashed.returncode == 137, crashed.stderr
    assert pending_intents(LocalStore(built.store))
    old_key_id = _status(built.env)["key_id"]
    result = cli_json(["keys", "rotate", "--reencrypt"], built.env)
    assert result["reencrypted"]["forget intents"] == 1 and result["reencrypted"]["stale marks"] >= 1
    resumed = run(["forget", "--resume"], built.env)
    assert resumed.returncode == 0, resumed.stderr
    assert not pending_intents(LocalStore(built.store))
    assert not cli_json(["search", faces / "Ross.png"], built.env)["hits"]
    assert cli_json(["find", "Rachel"], built.env)["appearances"]
    _settled(built, old_key_id)
