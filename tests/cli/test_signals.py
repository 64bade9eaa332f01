"""SIGINT/SIGTERM during `faceid-jobs process`: the run stops within seconds, says how far it got,
exits 130/143 without a traceback, keeps the chunks it stored, and a re-run resumes from them
to the same rows as an uninterrupted run; a Prefect run ends Cancelled; a second signal exits at
once; other long commands (annotate) stop the same way and leave no temp file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.runner import EXE, cut_clip, run

pytestmark = pytest.mark.models

ARGS = ["--sample-fps", "4", "--chunk-seconds", "2"]


@pytest.fixture(scope="module")
def clip(friends_clip, tmp_path_factory) -> Path:
    return cut_clip(friends_clip, tmp_path_factory.mktemp("clip") / "cut.mp4", 16.0)


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
            "FACEID_JOBS_KEY_FILE": str(home / "key.json")}


@pytest.fixture(scope="module")
def reference(clip, env, tmp_path_factory):
    """Face rows of an uninterrupted run."""
    store = tmp_path_factory.mktemp("reference")
    result = run(["process", clip, "--store", store, *ARGS], env)
    assert result.returncode == 0, result.stderr
    return _rows(store, env)


def _rows(store: Path, env: dict[str, str]):
    from faceid_jobs.config import Settings
    from tests.flows.util import face_rows

    return face_rows(store, Settings(key_file=env["FACEID_JOBS_KEY_FILE"]))


def _start(args: list, env: dict[str, str]) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    return subprocess.Popen([str(EXE), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env)


def _wait_for(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 240
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "not ready in 240 s"
        time.sleep(0.05)


def _signal(proc: subprocess.Popen, signum: int) -> tuple[subprocess.CompletedProcess, float]:
    """Send `signum`; (result, seconds the command took to exit after it)."""
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), time.monotonic() - sent


def _interrupt(clip: Path, store: Path, env: dict[str, str], signum: int,
               *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """Start `process`, send `signum` once the first chunk is stored; (result, seconds to exit after it)."""
    proc = _start(["process", clip, "--store", store, *ARGS, *extra], env)
    _wait_for(proc, lambda: list((store / "records").rglob("chunk-*.parquet")))
    return _signal(proc, signum)


@pytest.mark.parametrize(("signum", "code", "extra"), [(signal.SIGINT, 130, ()), (signal.SIGTERM, 143, ("--json",))])
def test_signal_stops_the_run_and_a_rerun_resumes(signum, code, extra, clip, env, reference, tmp_path):
    store = tmp_path / "store"
    result, seconds = _interrupt(clip, store, env, signum, *extra)
    assert result.returncode == code, result.stderr
    assert seconds < 5, f"exited {seconds:.1f} s after the signal"
    assert "interrupted:" in result.stderr and "re-run to resume" in result.stderr
    assert "Traceback" not in result.stderr
    stored = list((store / "records").rglob("chunk-*.parquet"))
    assert 1 <= len(stored) < 8  # some chunks kept, not all done
    assert not list(store.rglob(".tmp-*")), "a half-written file was left behind"
    if extra:  # --json: the summary of what was done, marked interrupted, with the error object's fields
        stopped = json.loads(result.stdout)
        assert stopped["interrupted"] is True and 1 <= stopped["chunks"]["done"] <= len(stored)
        assert (stopped["code"], stopped["exit"]) == ("interrupted", code)
        assert stopped["error"] == f"interrupted: {stopped['chunks']['done']} chunks done, re-run to resume"

    again = run(["process", clip, "--store", store, *ARGS, "--json"], env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["chunks"]["skipped"] >= len(stored) > 0
    assert summary["chunks"]["done"] + summary["chunks"]["skipped"] == 8
    rows = _rows(store, env)
    assert rows.column("face_id").to_pylist() == reference.column("face_id").to_pylist()


@pytest.mark.parametrize(("signum", "code", "extra"), [(signal.SIGINT, 130, ()), (signal.SIGTERM, 143, ("--json",))])
def test_signal_cancels_a_prefect_run(signum, code, extra, clip, env, tmp_path):
    """--prefect: exit 130/143 within 5 s with the message (with --json, the JSON error object too),
    no traceback; the flow run ends Cancelled (Prefect's own SIGTERM handler would end it Crashed)."""
    import sqlite3

    store = tmp_path / "store"
    result, seconds = _interrupt(clip, store, env | {"PREFECT_HOME": str(tmp_path / "prefect")}, signum,
                                 "--prefect", *extra)
    assert result.returncode == code, result.stderr
    assert seconds < 5, f"exited {seconds:.1f} s after the signal"
    assert "interrupted:" in result.stderr and "Traceback" not in result.stderr
    if extra:
        stopped = json.loads(result.stdout)
        assert (stopped["code"], stopped["exit"]) == ("interrupted", code)
        assert stopped["error"].startswith("interrupted:")
        assert stopped["orchestrator"] == "prefect" and stopped["interrupted"] is True
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        states = db.execute("select state_type from flow_run").fetchall()
    assert states == [("CANCELLED",)]


def test_a_second_sigint_exits_at_once(clip, env, tmp_path):
    """Held after storing a chunk (FACEID_JOBS_TEST_PAUSE_AT), the run cannot stop by itself:
    the first SIGINT waits for it, the second ends the process at once."""
    store, flag = tmp_path / "store", tmp_path / "go"
    proc = _start(["process", clip, "--store", store, *ARGS],
                  env | {"FACEID_JOBS_TEST_PAUSE_AT": f"chunk-stored={flag}"})
    _wait_for(proc, Path(f"{flag}.paused").exists)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None  # the first signal waits for the held chunk
    result, seconds = _signal(proc, signal.SIGINT)
    assert result.returncode == 130 and seconds < 2, (seconds, result.stderr)
    assert "Traceback" not in result.stderr


def test_sigterm_stops_annotate_and_leaves_no_temp_file(clip, env, tmp_path):
    out = tmp_path / "out" / "annotated.mp4"
    out.parent.mkdir()
    proc = _start(["annotate", clip, "-o", out, "--store", tmp_path / "store"], env)
    _wait_for(proc, lambda: list(out.parent.glob(".tmp-*")))
    result, seconds = _signal(proc, signal.SIGTERM)
    assert result.returncode == 143 and seconds < 5, (seconds, result.stderr)
    assert result.stderr.splitlines()[-1] == "error: interrupted" and "Traceback" not in result.stderr
    assert list(out.parent.iterdir()) == []  # neither the output nor its temp file


def test_sigint_stops_a_dask_run(clip, env, reference, tmp_path):
    """--dask-local: queued and running chunk tasks are cancelled (client.cancel); a re-run resumes."""
    store = tmp_path / "store"
    result, seconds = _interrupt(clip, store, env, signal.SIGINT, "--dask-local", "2")
    assert result.returncode == 130, result.stderr
    assert seconds < 5, f"exited {seconds:.1f} s after the signal"
    assert "interrupted:" in result.stderr and "Traceback" not in result.stderr
    again = run(["process", clip, "--store", store, *ARGS, "--json"], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["chunks"]["skipped"] > 0
    assert _rows(store, env).column("face_id").to_pylist() == reference.column("face_id").to_pylist()
