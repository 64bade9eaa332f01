"""`faceid-jobs audit` as a user runs it: names of enrolled identities shown, others by --name only."""

from __future__ import annotations

import json

import pytest

from faceid_jobs.identity.gallery import enroll, remove
from faceid_jobs.storage import LocalStore
from tests.cli.runner import run
from tests.synthetic_store import EMBEDDER, people, photo


@pytest.fixture(scope="module")
def store_env(tmp_path_factory, make_workspace):
    base = tmp_path_factory.mktemp("audit")
    ws = make_workspace(store=LocalStore(base / "store"), key_file=base / "key.json")
    p = people(["Ross", "Rachel"], seed=5)
    enroll(ws, {n: [(photo(n), p[n])] for n in p}, EMBEDDER, details={"via": "test"})
    remove(ws, ["Ross"])
    return {"FACEID_JOBS_STORE": str(base / "store"), "FACEID_JOBS_KEY_FILE": str(base / "key.json")}


def test_audit_names_the_enrolled_and_hashes_the_removed(store_env):
    res = run(["audit", "--json"], store_env)
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)["records"]
    assert [r["action"] for r in records] == ["enroll", "remove"]
    enrolled, removed = (r["identities"] for r in records)
    assert "Rachel" in enrolled and "Ross" not in enrolled
    assert len(removed) == 1 and removed[0].startswith("#") and removed[0] in enrolled
    assert records[0]["what"]["via"] == "test" and records[0]["who"]["user"]
    table = run(["audit"], store_env)
    assert table.returncode == 0 and "Rachel" in table.stdout and "Ross" not in table.stdout
    assert "2 audit records" in table.stdout


def test_audit_name_finds_a_removed_identity(store_env):
    res = run(["audit", "--name", "Ross", "--json"], store_env)
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)["records"]
    assert [(r["action"], "Ross" in r["identities"]) for r in records] == [("enroll", True), ("remove", True)]
    nobody = run(["audit", "--name", "Monica", "--json"], store_env)
    assert nobody.returncode == 0 and json.loads(nobody.stdout)["records"] == []


def test_audit_without_the_key_is_refused_in_one_line(store_env, tmp_path):
    res = run(["audit"], {**store_env, "FACEID_JOBS_KEY_FILE": str(tmp_path / "none.json")})
    assert res.returncode == 4 and "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.startswith("error:")]) == 1
