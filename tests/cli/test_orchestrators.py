"""`faceid-jobs process` run every way a user can: in process (no Prefect API), as the Prefect
flow (`--prefect`), on a local Dask cluster (`--dask-local`) and on a real Dask scheduler with
workers on loopback (`--dask-address`), one of them killed mid-run. Same rows, summaries and
exit codes every way; a scheduler lost mid-run, or every worker, is one line (exit 1)."""

from __future__ import annotations

import contextlib
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

from faceid_jobs.testhooks import PAUSE_ENV
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


@pytest.mark.slow
def test_prefect_flow_on_a_local_dask_cluster_from_the_cli(threaded, footage, env, tmp_path):
    """The flow with a Dask task runner, as a deployment made with `deploy --dask-local` runs it."""
    reference, reference_store = threaded
    store = tmp_path / "store"
    result = run(["process", footage, "--store", store, "--prefect", "--dask-local", "2", *ARGS], env)
    assert result.returncode == reference.returncode == 1, result.stderr
    assert json.loads(result.stdout)["orchestrator"] == "prefect"
    assert _summary(result.stdout) == _summary(reference.stdout)
    _same_rows(_rows(store, env), _rows(reference_store, env))
    assert "Traceback" not in result.stderr


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
    flag = tmp_path / "go"
    with _cluster(env, 2, {PAUSE_ENV: f"chunk-start={flag}"}) as (address, _, workers):
        store = tmp_path / "store"
        cli = _start(["process", footage, "--store", store, "--dask-address", address, *ARGS], env)
        # Worker 0 holds a chunk it has started (nothing of it stored): killed there, mid-run,
        # its chunk must be re-run on the other worker.
        _wait_paused(flag, workers[0].pid, cli)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=30)
        still_running = cli.poll() is None
        flag.touch()
        out, err = cli.communicate(timeout=300)
        assert still_running and cli.returncode == reference.returncode, err
        assert _summary(out) == _summary(reference.stdout)  # every chunk done, none skipped or failed
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


def test_scheduler_killed_mid_run_is_one_line(footage, env, tmp_path):
    flag = tmp_path / "go"
    with _cluster(env, 1, {PAUSE_ENV: f"chunk-start={flag}"}) as (address, scheduler, workers):
        cli = _start(["process", footage / "cut.mp4", "--store", tmp_path / "s", "--dask-address", address,
                      *ARGS], env)
        _wait_paused(flag, workers[0].pid, cli)
        scheduler.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = cli.communicate(timeout=120)
        waited = time.monotonic() - killed
    # The user stopped nothing: not "interrupted" (130) but the cluster's failure, named, at once.
    _assert_one_line_error(cli.returncode, out, err, address, "connection lost mid-run")
    assert waited < 30


def test_every_worker_killed_mid_run_is_one_line_after_the_timeout(footage, env, tmp_path):
    flag = tmp_path / "go"
    with _cluster(env, 1, {PAUSE_ENV: f"chunk-start={flag}"}) as (address, _, workers):
        cli = _start(["process", footage / "cut.mp4", "--store", tmp_path / "s", "--dask-address", address,
                      *ARGS], {**env, "FACEID_JOBS_DASK_NO_WORKERS_S": "3"})
        _wait_paused(flag, workers[0].pid, cli)
        workers[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = cli.communicate(timeout=120)
        waited = time.monotonic() - killed
    _assert_one_line_error(cli.returncode, out, err, address, "has had no workers for 3 s")
    assert 3 <= waited < 30  # not forever, and not before the timeout


def _assert_one_line_error(code: int, out: str, err: str, address: str, problem: str) -> None:
    assert code == 1, (out, err)
    assert "Traceback" not in err and "distributed" not in err, err
    assert not [line for line in err.splitlines() if line.startswith("error")], err  # Dask's own, e.g. reconnects
    error = json.loads(out)  # --json: the error is one JSON object on stdout
    assert error["exit"] == 1 and "\n" not in error["error"]
    assert address in error["error"] and problem in error["error"], error


@contextlib.contextmanager
def _cluster(env: dict[str, str], workers: int, extra: dict[str, str]):
    """A real `dask scheduler` and `workers` × `dask worker` (no nanny: a killed one stays dead) on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    worker_env = {**os.environ, **env, "DASK_LOGGING__DISTRIBUTED": "warning", **extra}
    quiet = {"env": worker_env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 **quiet)
    procs = [scheduler]
    try:
        _wait_for_port(port)
        started = [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                    **quiet) for _ in range(workers)]
        procs += started
        _wait_for_workers(address, workers)
        yield address, scheduler, started
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def _start(args, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(_cli_args(args), env=_cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_paused(flag: Path, pid: int, cli: subprocess.Popen, seconds: float = 240) -> None:
    """Until process `pid` stands at the pause point (it writes its pid to `flag`.paused)."""
    paused = Path(f"{flag}.paused")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and cli.poll() is None:
        if paused.exists() and str(pid) in paused.read_text().split():
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never reached the pause point; cli exit {cli.poll()}")


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
