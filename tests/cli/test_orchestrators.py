"""`faceid-jobs process` run every way a user can: in process (no Prefect API), as the Prefect
flow (`--prefect`), on a local Dask cluster (`--dask-local`) and on a real Dask scheduler with
workers on loopback (`--dask-address`), one of them killed mid-run. Same rows, summaries and
exit codes every way."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli.runner import EXE, cut_clip

pytestmark = pytest.mark.models

# Chunks of 1 s at 4 frames/s: enough chunks on the 8-second clip for two workers to share.
ARGS = ["--sample-fps", "4", "--chunk-seconds", "1", "--json"]
# Differ by nature between runs of the same work: when, how long, and by whom.
VOLATILE = {"wall_seconds", "video_seconds_per_second", "orchestrator", "flow_run_id"}
# Every key of `process --json`'s summary, whichever orchestrator ran it.
SUMMARY_KEYS = {"schema", "videos", "videos_unchanged", "chunks", "frames_sampled", "faces", "faces_in_store",
                "indexed_vectors", "video_seconds", "wall_seconds", "video_seconds_per_second", "failures",
                "bad_files", "skipped_files", "copies", "ok", "index", "orchestrator", "flow_run_id", "interrupted"}


@pytest.fixture(scope="module")
def footage(tmp_path_factory, friends_clip) -> Path:
    """An 8-second cut of the clip (two shots), a file that is no video, and notes the walk leaves out."""
    folder = tmp_path_factory.mktemp("footage")
    cut_clip(friends_clip, folder / "cut.mp4", 8.0)
    (folder / "junk.mp4").write_bytes(os.urandom(40_000))
    (folder / "notes.txt").write_text("shot list\n")
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
            "FACEID_JOBS_KEY_FILE": str(home / "key.json"), "PREFECT_HOME": str(home / "prefect")}


@pytest.fixture(scope="module")
def threaded(footage, env, tmp_path_factory):
    """The reference: the default in-process run (thread pool)."""
    store = tmp_path_factory.mktemp("threaded")
    result = run(["process", footage, "--store", store, *ARGS], env)
    return result, store


def _summary(stdout: str) -> dict:
    summary = json.loads(stdout)
    summary["index"] = {k: v for k, v in summary["index"].items() if k != "attempts"}
    return {k: v for k, v in summary.items() if k not in VOLATILE}


def _rows(store: Path, env: dict[str, str]):
    from faceid_jobs.config import Settings
    from tests.flows.util import face_rows

    return face_rows(store, Settings(key_file=env["FACEID_JOBS_KEY_FILE"]))


def _same_rows(a, b) -> None:
    assert a.num_rows == b.num_rows > 0
    for column in ("face_id", "video_fingerprint", "chunk_index", "frame_index", "analysis_id", "track_id"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist(), column
    for column in ("bbox", "embedding", "liveness", "quality"):
        np.testing.assert_allclose(np.asarray(a.column(column).to_pylist(), np.float32),
                                   np.asarray(b.column(column).to_pylist(), np.float32), atol=1e-4,
                                   err_msg=column)


def test_in_process_run_starts_no_prefect_server(threaded, env):
    result, _ = threaded
    assert result.returncode == 1, result.stderr  # junk.mp4 failed, the clip did not
    summary = json.loads(result.stdout)
    assert summary["orchestrator"] == "local" and summary["flow_run_id"] is None
    assert set(summary) == SUMMARY_KEYS and summary["interrupted"] is False
    assert summary["chunks"]["done"] == 8 and summary["chunks"]["failed"] == 0
    assert summary["ok"] is False and summary["bad_files"] == [summary["failures"][0]["video"]]
    assert summary["skipped_files"] == [{"path": str(Path(summary["bad_files"][0]).with_name("notes.txt")),
                                         "reason": "not a video extension"}]
    assert [f["video"] for f in summary["failures"]] == [str(Path(summary["failures"][0]["video"]))]
    assert "junk.mp4" in summary["failures"][0]["error"]
    assert not Path(env["PREFECT_HOME"], "prefect.db").exists()
    assert "Traceback" not in result.stderr


def test_prefect_flow_gives_the_same_records_summary_and_exit_code(threaded, footage, env, tmp_path):
    reference, reference_store = threaded
    store = tmp_path / "store"
    result = run(["process", footage, "--store", store, "--prefect", *ARGS], env)
    assert result.returncode == reference.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["orchestrator"] == "prefect" and summary["flow_run_id"]
    assert set(summary) == SUMMARY_KEYS
    assert _summary(result.stdout) == _summary(reference.stdout)  # bad_files, skipped_files, ok included
    _same_rows(_rows(store, env), _rows(reference_store, env))
    # Prefect's own lines (server start and stop, task failures, telemetry) stay off the terminal:
    # the user sees what the in-process run shows, and no ERROR or Traceback line.
    made_key = "created encryption key"  # the reference run, first on its store, made the key
    assert result.stderr.splitlines() == [line for line in reference.stderr.splitlines() if made_key not in line]
    assert "ERROR" not in result.stderr and "Traceback" not in result.stderr


def test_local_dask_cluster_from_the_cli(threaded, footage, env, tmp_path):
    reference, reference_store = threaded
    store = tmp_path / "store"
    result = run(["process", footage, "--store", store, "--dask-local", "2", *ARGS], env)
    assert result.returncode == reference.returncode, result.stderr
    assert json.loads(result.stdout)["orchestrator"] == "dask"
    assert _summary(result.stdout) == _summary(reference.stdout)
    _same_rows(_rows(store, env), _rows(reference_store, env))
    # Dask's own chatter (scheduler, nannies, workers; "Compute Failed" for the junk file) stays
    # off the user's terminal: the junk file is reported once, by the summary.
    assert "distributed." not in result.stderr and "Traceback" not in result.stderr


def test_unreachable_scheduler_is_one_line(footage, env, tmp_path):
    port = _free_port()
    result = run(["process", footage / "cut.mp4", "--store", tmp_path / "s", "--dask-address",
                  f"tcp://127.0.0.1:{port}", *ARGS], env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "distributed" not in result.stderr
    error = json.loads(result.stdout)  # --json: the error is one JSON object on stdout
    assert error["exit"] == 2 and "\n" not in error["error"]
    assert f"127.0.0.1:{port}" in error["error"] and "does not answer" in error["error"]


def test_real_scheduler_with_a_worker_killed_mid_run(threaded, footage, env, tmp_path):
    reference, reference_store = threaded
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    worker_env = {**os.environ, **env, "DASK_LOGGING__DISTRIBUTED": "warning"}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=worker_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        _wait_for_port(port)
        workers = [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                     "--no-dashboard"], env=worker_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(2)]
        procs += workers
        _wait_for_workers(address, 2)
        store = tmp_path / "store"
        cli = subprocess.Popen(_cli_args(["process", footage, "--store", store, "--dask-address", address,
                                          *ARGS]), env=_cli_env(env), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        # Kill one worker as soon as the first chunk is stored: the rest of its work moves.
        deadline = time.monotonic() + 240
        while not list(store.rglob("chunk-*.parquet")) and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.05)
        killed_alive = workers[0].poll() is None
        workers[0].send_signal(signal.SIGKILL)
        out, err = cli.communicate(timeout=300)
        assert killed_alive and cli.returncode == reference.returncode, err
        # A chunk the killed worker had stored before its result came back is re-run elsewhere
        # and found stored ("skipped"): the split of done/skipped may differ, nothing else.
        chunks = json.loads(out)["chunks"]
        assert chunks["failed"] == 0 and chunks["done"] + chunks["skipped"] == 8
        got, want = _summary(out), _summary(reference.stdout)
        for key in ("chunks", "frames_sampled", "faces"):
            got.pop(key), want.pop(key)
        assert got == want
        _same_rows(_rows(store, env), _rows(reference_store, env))
        assert "Traceback" not in err
        # The surviving worker loaded one model set for all the chunks it ran.
        from distributed import Client

        def model_sets_loaded() -> int:  # defined here, so cloudpickle sends it by value
            from faceid_jobs.pipeline.steps import MODEL_POOL

            return sum(MODEL_POOL.loaded().values())

        with Client(address, timeout="10s") as client:
            loads = client.run(model_sets_loaded)
        assert list(loads.values()) == [1]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def run(args, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, with no Prefect server configured unless `env` says so."""
    return subprocess.run(_cli_args(args), capture_output=True, text=True, env=_cli_env(env), timeout=timeout)


def _cli_args(args) -> list[str]:
    return [str(EXE), *map(str, args)]


def _cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEID_JOBS_", "PREFECT_"))}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"no scheduler on port {port}")


def _wait_for_workers(address: str, count: int, seconds: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(count, timeout=seconds)
