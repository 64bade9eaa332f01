"""A full disk without root: the CLI on a local store whose writes fail with ENOSPC (`full_store`).

`process`, `enroll`, `keys rotate` and `forget --purge-appearances` on a full store stop at once
(no retry waits) with one line naming the path and the free space; once there is space again a
re-run converges to the answers of a run that never hit the full disk. Always runs (the tmpfs test
in `test_full_disk.py` needs root). Uses the store of `test_forget_interrupted` (Ross and Phoebe
enrolled, four seconds of shot 3 processed at 2 frames/s in 2-s chunks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faceid_jobs.storage.base import open_store
from tests.cli.runner import run
from tests.faults.full_store import FLAG_ENV
from tests.faults.stores import objects, orphan_keys
from tests.faults.test_forget_interrupted import built  # noqa: F401 (the module's store)

pytestmark = [pytest.mark.models, pytest.mark.faults]

REPO = Path(__file__).resolve().parents[2]
QUICK_S = 30.0  # model loading included; one retry wait alone was 10 s, three clips took 205 s


def on_full_disk(args, env, flag: Path, allowed: int = 0) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI with the store full after `allowed` writes; (result, seconds)."""
    flag.write_text(str(allowed))
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env | {FLAG_ENV: str(flag)}
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "tests.faults.full_store", *map(str, args)], env=full,
                                cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        flag.unlink()
    return result, time.monotonic() - started


def assert_full(result, seconds: float, store: Path) -> None:
    """Failed at once, not retried, with one line naming a path in the store and the free space."""
    assert result.returncode not in (0, 137), (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "retry" not in result.stderr.lower(), result.stderr
    lines = [line for line in result.stderr.splitlines() if "No space left on device" in line]
    assert len(lines) == 1, result.stderr
    assert str(store) in lines[0] and "MiB free there" in lines[0], lines[0]
    assert seconds < QUICK_S, seconds
    print(f"full disk: exit {result.returncode} after {seconds:.1f} s: {lines[0]}")


def ok(args, env) -> dict:
    result = run([*args, "--json"], env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def hits(env, photo) -> list[str]:
    return sorted(h["face_id"] for h in ok(["search", photo, "--top-k", "50"], env)["hits"])


@pytest.fixture()
def copy(built, tmp_path):  # noqa: F811
    """(env, store path): a copy of the built store and its key file."""
    shutil.copytree(built["root"] / "store", tmp_path / "store", symlinks=True)
    (tmp_path / "keys").mkdir()
    shutil.copy2(built["root"] / "key.json", tmp_path / "keys" / "key.json")
    return built["env"] | {"FACEID_JOBS_STORE": str(tmp_path / "store"),
                           "FACEID_JOBS_KEY_FILE": str(tmp_path / "keys" / "key.json")}, tmp_path / "store"


def test_process_stops_at_the_first_write_and_a_rerun_converges(built, tmp_path):  # noqa: F811
    store = tmp_path / "store"
    env = built["env"] | {"FACEID_JOBS_STORE": str(store)}
    args = ["process", built["root"] / "cut.mp4", "--sample-fps", "2", "--chunk-seconds", "2"]
    # Full once the key marker is written: the first chunk's write fails after its analysis, and the
    # run stops there instead of analysing the rest.
    result, seconds = on_full_disk(args, env, tmp_path / "full", allowed=1)
    assert_full(result, seconds, store)
    assert "keys/kek.json" not in result.stderr
    assert not objects(open_store(str(store)), "records/")  # nothing half-written visible
    ok(args, env)
    assert hits(env, built["faces"] / "Ross.png") == hits(built["env"], built["faces"] / "Ross.png")


def test_enroll_rotate_and_forget_fail_at_once_and_converge(copy, built, tmp_path, portraits):  # noqa: F811
    env, store = copy
    flag = tmp_path / "full"
    ross, phoebe = built["faces"] / "Ross.png", built["faces"] / "Phoebe.png"
    before = {"ross": hits(env, ross), "phoebe": hits(env, phoebe)}

    result, seconds = on_full_disk(["enroll", "Rachel", portraits["Rachel"]], env, flag)
    assert_full(result, seconds, store)
    assert "Rachel" not in {row["name"] for row in ok(["identities", "list"], env)["identities"]}
    ok(["enroll", "Rachel", portraits["Rachel"]], env)

    old = ok(["keys", "status"], env)["key_id"]
    result, seconds = on_full_disk(["keys", "rotate"], env, flag, allowed=2)  # the lease and one re-wrap
    assert_full(result, seconds, store)
    assert ok(["keys", "status"], env)["rotation"]["old_kek"] == old
    new = ok(["keys", "rotate"], env)["new_key_id"]
    status = ok(["keys", "status"], env)
    assert status["rotation"] is None and set(status["data_keys"]) == {new} and new != old
    assert {"ross": hits(env, ross), "phoebe": hits(env, phoebe)} == before

    # The clean forget, on a copy taken now, is what the interrupted one must end as.
    clean = tmp_path / "clean"
    shutil.copytree(store, clean, symlinks=True)
    clean_env = env | {"FACEID_JOBS_STORE": str(clean)}
    ok(["forget", "Ross", "--purge-appearances"], clean_env)
    orphans = orphan_keys(open_store(str(store)))
    # Full before the intent is written (its data key is, then deleted again): nothing pending, nothing left.
    result, seconds = on_full_disk(["forget", "Ross", "--purge-appearances"], env, flag, allowed=1)
    assert_full(result, seconds, store)
    assert not objects(open_store(str(store)), "journal/") and orphan_keys(open_store(str(store))) == orphans
    assert hits(env, ross) == before["ross"]
    # Full once the intent is written: the forget is pending until it is run again.
    result, seconds = on_full_disk(["forget", "Ross", "--purge-appearances"], env, flag, allowed=3)
    assert_full(result, seconds, store)
    refused = run(["search", ross], env)
    assert refused.returncode == 4 and "faceid-jobs forget --resume" in refused.stderr, refused.stderr
    ok(["forget", "Ross", "--purge-appearances"], env)
    after = {"ross": hits(env, ross), "phoebe": hits(env, phoebe)}
    assert after == {"ross": hits(clean_env, ross), "phoebe": hits(clean_env, phoebe)}
    assert after["ross"] == [] and after["phoebe"]
