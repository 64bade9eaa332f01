"""Operations of several steps raced by other writers, run as users run them (CLI subprocesses):
`keys rotate` ∥ `process`, and `forget --purge-appearances` ∥ `process` ∥ `index build`.

Real models, real footage, on a local store and on S3 (the loopback moto server); the store is read
through `Store` (list/get), never the filesystem, so one check serves both. Each ends in the answer of
the clean sequential run (made once, locally), or in a refusal (exit 4) that names the command which
finishes the job. ``FACEID_JOBS_TEST_PAUSE_AT`` holds the
operation at one of its steps (`faceid_jobs.testhooks`) until the racing `process` has stored its
chunks, so the race happens every run instead of now and then.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from faceid_jobs.crypto.envelope import stored_kek_ids
from faceid_jobs.storage.base import open_store
from tests.cli.runner import EXE, cut_clip, run
from tests.faults.stores import objects

pytestmark = [pytest.mark.faults, pytest.mark.models, pytest.mark.slow]

ARGS = ["--sample-fps", "2", "--chunk-seconds", "1", "--json"]
LONG = ["--sample-fps", "4", "--chunk-seconds", "1", "--json"]  # 8 s: still storing chunks when the rotation starts


@pytest.fixture(scope="module")
def clips(tmp_path_factory, friends_clip, portraits):
    root = tmp_path_factory.mktemp("race-clips")
    faces = root / "faces"
    faces.mkdir()
    for name in ("Ross", "Phoebe", "Rachel"):
        (faces / f"{name}.png").symlink_to(portraits[name])
    return {"a": cut_clip(friends_clip, root / "shot3.mp4", 3.0, 275),   # Phoebe, Ross
            "b": cut_clip(friends_clip, root / "shot5.mp4", 4.0, 455),   # Phoebe, Ross
            "long": cut_clip(friends_clip, root / "shots34.mp4", 12.0, 270),
            "faces": faces}


def env_for(base: Path, weights_dir, store: str | None = None) -> dict[str, str]:
    return {"FACEID_JOBS_STORE": store or str(base / "store"), "FACEID_JOBS_KEY_FILE": str(base / "keys" / "key.json"),
            "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
            "PREFECT_HOME": str(base / "prefect")}


def start(args, env) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    return subprocess.Popen([str(EXE), *map(str, args)], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def ok(result) -> dict | None:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def finished(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(check, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def records(env) -> list[str]:
    return objects(open_store(env["FACEID_JOBS_STORE"]), "records/", ".parquet")


def hits(env, photo) -> list[str]:
    found = ok(run(["search", photo, "--json", "--top-k", "50"], env))
    return sorted(h["face_id"] for h in found["hits"])


def wrapping_keks(env) -> set[str]:
    """The KEK id each data key object in the store is wrapped under (read from the store's objects)."""
    return {kek for _, kek in stored_kek_ids(open_store(env["FACEID_JOBS_STORE"]))}


@pytest.fixture(params=["local", "s3"])
def raced(request, tmp_path, weights_dir) -> dict[str, str]:
    """The env of the store the race runs on: a local folder, or a bucket on the loopback S3 server."""
    store = f"s3://{request.getfixturevalue('s3_bucket')}/store" if request.param == "s3" else None
    return env_for(tmp_path / "raced", weights_dir, store)


@pytest.fixture(scope="module")
def clean_rotation(tmp_path_factory, weights_dir, clips, portraits) -> dict:
    """The long clip processed without a rotation: its summary and Phoebe's hits."""
    clean = env_for(tmp_path_factory.mktemp("clean-rotation"), weights_dir)
    summary = ok(run(["process", clips["long"], *LONG], clean))
    return {"summary": summary, "hits": hits(clean, portraits["Phoebe"]), "records": len(records(clean))}


@pytest.mark.parametrize("paused", [True, False], ids=["held-at-lease", "free"])
def test_rotation_while_process_stores_chunks(tmp_path, raced, clean_rotation, clips, portraits, paused):
    """`keys rotate` takes its lease while `process` stores chunks and re-wraps only once the
    process has stored more: afterwards every data key is under the new key, and search, index build
    and export work with the answer of the clean run."""
    clean_hits = clean_rotation["hits"]
    assert clean_hits

    env = raced
    assert run(["keys", "init"], env).returncode == 0
    old = ok(run(["keys", "status", "--json"], env))["key_id"]
    flag = tmp_path / "go"
    process = start(["process", clips["long"], *LONG], env)
    wait_for(lambda: records(env) or process.poll() is not None, "the first chunk")
    hold = {"FACEID_JOBS_TEST_PAUSE_AT": f"rotate-lease={flag}"} if paused else {}
    rotate = start(["keys", "rotate", "--json"], env | hold)
    if paused:
        wait_for(lambda: Path(f"{flag}.paused").exists() or rotate.poll() is not None, "the rotation's lease")
        stored = len(records(env))
        wait_for(lambda: len(records(env)) > stored or process.poll() is not None, "a chunk during the lease")
        flag.touch()
    rotated = finished(rotate)
    processed = finished(process)
    new = ok(rotated)["new_key_id"]
    assert new != old
    if processed.returncode != 0:
        # Its chunks stored under the lease or after the rotation were refused (it lacks the new key),
        # each saying what to do; a re-run completes the store.
        errors = {f["error"].split(": ")[-1] for f in json.loads(processed.stdout)["failures"]}
        assert all("keys rotate" in e or "run it again" in e for e in errors), errors
        assert "Traceback" not in processed.stderr
        processed = run(["process", clips["long"], *LONG], env)
    summary = ok(processed)
    status = ok(run(["keys", "status", "--json"], env))
    assert status["key_id"] == new and status["rotation"] is None and set(status["data_keys"]) == {new}
    assert wrapping_keks(env) == {new}  # nothing left under the retired key, nothing under a third
    ok(run(["index", "build", "--json"], env))
    assert hits(env, portraits["Phoebe"]) == clean_hits
    assert summary["faces_in_store"] == clean_rotation["summary"]["faces_in_store"]
    exported = run(["export", "--plaintext", tmp_path / "export"], env)
    assert exported.returncode == 0 and "Traceback" not in exported.stderr, exported.stderr
    assert len(list((tmp_path / "export").rglob("*.parquet"))) == clean_rotation["records"]


def _forgotten(env, clips, portraits) -> dict[str, list[str]]:
    """The answers a forget of Ross must give: Ross's and Phoebe's hits, and Ross's after re-indexing
    every record file (index_by = face: the track index cannot be extended, so it is rebuilt)."""
    return {"ross": hits(env, portraits["Ross"]), "phoebe": hits(env, portraits["Phoebe"]),
            "rebuilt": _rebuilt_hits(env, portraits["Ross"])}


def _rebuilt_hits(env, photo) -> list[str]:
    rebuild = env | {"FACEID_JOBS_INDEX_BY": "face"}
    ok(run(["index", "build", "--json"], rebuild))
    return hits(rebuild, photo)


@pytest.fixture(scope="module")
def clean_forget(tmp_path_factory, weights_dir, clips, portraits) -> dict[str, list[str]]:
    """The answers of process, process, forget run one after another (locally)."""
    clean = env_for(tmp_path_factory.mktemp("clean-forget"), weights_dir)
    assert run(["keys", "init"], clean).returncode == 0
    ok(run(["enroll", "--from-dir", clips["faces"], "--json"], clean))
    for video, args in (("a", ARGS), ("long", LONG)):
        ok(run(["process", clips[video], *args], clean))
    ok(run(["forget", "Ross", "--purge-appearances", "--json"], clean))
    return _forgotten(clean, clips, portraits)


def test_forget_racing_process_and_index_build(tmp_path, raced, clean_forget, clips, portraits):
    """`forget Ross --purge-appearances` runs while `process` stores a new video and `index build` runs.
    The process is held before its first data key (so before its first chunk is stored) until the forget
    is held after its first pass and merge; then it stores (and merges) all its chunks, ones the first
    pass never read. Afterwards Ross is found nowhere, also not after re-indexing every record file: the
    answers of process, process, forget run one after another."""
    expected = clean_forget
    env = raced
    assert run(["keys", "init"], env).returncode == 0
    ok(run(["enroll", "--from-dir", clips["faces"], "--json"], env))
    ok(run(["process", clips["a"], *ARGS], env))
    assert hits(env, portraits["Ross"])
    flag, held = tmp_path / "go", tmp_path / "store-chunks"
    process = start(["process", clips["long"], *LONG], env | {"FACEID_JOBS_TEST_PAUSE_AT": f"data-key-put={held}"})
    wait_for(lambda: Path(f"{held}.paused").exists() or process.poll() is not None, "the process's first chunk")
    forget = start(["forget", "Ross", "--purge-appearances", "--json"],
                   env | {"FACEID_JOBS_TEST_PAUSE_AT": f"merged={flag}"})
    wait_for(lambda: Path(f"{flag}.paused").exists() or forget.poll() is not None, "the forget's merge")
    at_pause = len(records(env))
    held.touch()
    build = finished(start(["index", "build", "--json"], env))
    processed = finished(process)
    stored_meanwhile = len(records(env)) - at_pause
    flag.touch()
    forgot = ok(finished(forget))
    for result in (build, processed):  # done, or refused while the forget is pending, naming its finisher
        if result.returncode != 0:
            assert result.returncode == 4 and "faceid-jobs forget --resume" in result.stdout + result.stderr, (
                result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
    if processed.returncode != 0:
        ok(run(["process", clips["long"], *LONG], env))
    assert stored_meanwhile > 0, "the process stored nothing while the forget was held"
    assert forgot["faces_deleted"] > 0
    ok(run(["index", "build", "--json"], env))
    assert _forgotten(env, clips, portraits) == expected
    assert not expected["ross"] and not expected["rebuilt"] and expected["phoebe"]


def test_two_prefect_process_runs_sharing_prefect_home_are_quiet(tmp_path, weights_dir, clips):
    """Two `process --prefect` runs at once with one PREFECT_HOME (each starts Prefect's temporary
    server on the same database): both succeed and print no traceback. The default in-process mode is
    covered by `test_concurrency.test_two_overlapping_process_runs_and_readers`."""
    env = env_for(tmp_path, weights_dir)
    assert run(["keys", "init"], env).returncode == 0
    runs = [start(["process", clips[video], "--prefect", *ARGS], env) for video in ("a", "b")]
    for result in map(finished, runs):
        if result.returncode != 0 or "Traceback" in result.stderr:
            pytest.fail(f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n"
                        f"{result.stderr[-6000:]}", pytrace=False)
