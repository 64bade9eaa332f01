"""`keys rotate` killed mid-way converges on a re-run: one new key, every data key under it (real models, footage).

Uses the store of `test_forget_interrupted` (Ross and Phoebe enrolled, four seconds of shot 3 processed),
a copy per test, with a copy of its key file (rotation replaces the key file): a local folder, or with
`keyed="s3"` a bucket on the loopback S3 server (the checks read the store through `Store`).
"""

from __future__ import annotations

import json
import shutil

import pytest

from faceid_jobs.storage.base import Store, open_store
from faceid_jobs.storage.layout import parse_data_key
from tests.cli.runner import run
from tests.faults.stores import copy_to_s3
from tests.faults.test_forget_interrupted import built  # noqa: F401 (the module's store)

pytestmark = pytest.mark.models


@pytest.fixture()
def keyed(built, tmp_path, request):  # noqa: F811
    """(env, the store copy as a Store, the key file's folder); on S3 when parametrized indirectly with "s3"."""
    if getattr(request, "param", "local") == "s3":
        uri = copy_to_s3(built["root"] / "store", request.getfixturevalue("s3_bucket"))
    else:
        shutil.copytree(built["root"] / "store", tmp_path / "store", symlinks=True)
        uri = str(tmp_path / "store")
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy2(built["root"] / "key.json", keys / "key.json")
    env = built["env"] | {"FACEID_JOBS_STORE": uri, "FACEID_JOBS_KEY_FILE": str(keys / "key.json")}
    return env, open_store(uri), keys


def _status(env) -> dict:
    result = run(["keys", "status", "--json"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _data_key_refs(store: Store) -> set[str]:
    return {ref for key in store.list("keys/data/") if (ref := parse_data_key(key))}


# Every step on a local store; on S3 the kill between the two re-wrap passes.
@pytest.mark.parametrize(("keyed", "step"), [("local", "rotate-lease"), ("local", "rotate-rewrapped"),
                                             ("local", "rotate-retired"), ("s3", "rotate-rewrapped")],
                         indirect=["keyed"])
def test_rotation_killed_mid_way_converges_on_a_rerun(keyed, built, step):  # noqa: F811
    env, root, keys = keyed
    old = _status(env)["key_id"]
    crashed = run(["keys", "rotate"], env | {"FACEID_JOBS_TEST_CRASH_AT": step})
    assert crashed.returncode == 137, (crashed.stdout, crashed.stderr)
    status = _status(env)
    rotation = status["rotation"]
    assert rotation and rotation["old_kek"] == old and rotation["new_kek"] != old
    new = rotation["new_kek"]
    plain = run(["keys", "status"], env)
    assert "rotation in progress" in plain.stdout and "keys rotate" in plain.stdout
    if step == "rotate-retired":
        doctor = run(["doctor", "--json"], env)
        assert [line for line in json.loads(doctor.stdout)["pending"]
                if f"{old} -> {new}" in line and "`faceid-jobs keys rotate`" in line], doctor.stdout
    if step == "rotate-lease":
        # A writer during the rotation wraps its new data keys under the new key.
        before = _data_key_refs(root)
        assert run(["enroll", "Phoebe", built["faces"] / "Phoebe.png"], env).returncode == 0
        made = _data_key_refs(root) - before
        assert made
        from faceid_jobs.config import load_settings
        from faceid_jobs.workspace import open_workspace

        ws = open_workspace(load_settings(environ=env))
        assert {ws.keys.kek_of(ref) for ref in made} == {new}
    rerun = run(["keys", "rotate", "--json"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["new_key_id"] == new  # the same new key: never a third one
    status = _status(env)
    assert status["key_id"] == new and status["rotation"] is None and set(status["data_keys"]) == {new}
    assert sorted(p.name for p in keys.iterdir()) == ["key.json", f"key.json.retired-{old}"]
    found = run(["search", built["faces"] / "Ross.png", "--json"], env)
    assert found.returncode == 0 and json.loads(found.stdout)["hits"], found.stderr
    assert run(["index", "build"], env).returncode == 0
    assert run(["find", "Phoebe"], env).returncode == 0
