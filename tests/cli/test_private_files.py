"""Plaintext exports and HTML reports are private files, written as a user runs the commands.

`export --plaintext DIR` refuses a folder that is not empty or not 0700 (unless --force);
exports and `search --html` reports are 0600 whatever the umask, and a symlink planted
where a temp file or a video folder goes is never written through.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from faceid_jobs.search.stored import write_results
from faceid_jobs.storage import LocalStore
from tests.cli.runner import cut_clip, run
from tests.synthetic_store import add_video, faces_of, people

FPS = ["s1-" + "1" * 32, "s1-" + "2" * 32]
HIT = {"video": "/archive/a.mp4", "timestamp_s": 1.5, "frame": 36, "bbox": [1, 2, 3, 4], "similarity": 0.7}
QUERY_RUN = {"flow_run_id": "run-1", "failures": [],
             "results": [{"query": {"photo": "/p/q.jpg", "bbox": [0, 0, 9, 9], "det_score": 0.9},
                          "hits": [HIT], "index": {"build_id": "v1"}}]}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def store_env(tmp_path_factory, make_workspace):
    """A store with two videos of synthetic records, and the CLI environment that opens it."""
    base = tmp_path_factory.mktemp("export")
    ws = make_workspace(store=LocalStore(base / "store"), key_file=base / "key.json")
    rng = np.random.default_rng(0)
    who = people(["a", "b"])
    for fp, name in zip(FPS, who, strict=True):
        chunks = [[(v, 1) for v in faces_of(who[name], 3, rng)], [(v, 2) for v in faces_of(who[name], 2, rng)]]
        add_video(ws, fp, chunks)
    write_results(ws, "run-1", QUERY_RUN)  # what a `search-photos` flow run leaves
    return {"FACEID_JOBS_STORE": str(base / "store"), "FACEID_JOBS_KEY_FILE": str(base / "key.json")}


def exported(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): pq.read_table(p).num_rows for p in sorted(folder.rglob("chunk-*.parquet"))}


def one_error(result) -> str:
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_export_new_folder_is_0700_and_files_0600_under_umask_000(store_env, tmp_path):
    out = tmp_path / "plain" / "records"
    with umask(0o000):
        result = run(["export", "--plaintext", out], store_env)
    assert result.returncode == 0, result.stderr
    rows = exported(out)
    assert sorted(rows) == [f"{fp}/chunk-{c:06d}.parquet" for fp in FPS for c in (0, 1)]
    assert sum(rows.values()) == 10 and "wrote 4 files, 10 face rows, results of 1 search runs" in result.stdout
    assert mode_of(out) == 0o700 and {mode_of(out / fp) for fp in FPS} == {0o700}
    assert {mode_of(out / f) for f in rows} == {0o600}
    # The search run's results, decrypted beside them.
    run_dir = out / "queries" / "run-1"
    assert {mode_of(out / "queries"), mode_of(run_dir)} == {0o700}
    assert {mode_of(p) for p in run_dir.iterdir()} == {0o600}
    assert pq.read_table(run_dir / "hits.parquet").column("video").to_pylist() == [HIT["video"]]
    assert json.loads((run_dir / "results.json").read_text())["results"] == QUERY_RUN["results"]
    assert not [p for p in out.rglob(".tmp-*")]


@pytest.mark.parametrize("problem", ["not-empty", "mode-0755", "not-a-folder"])
def test_export_refuses_an_unsafe_existing_folder(store_env, tmp_path, problem):
    out = tmp_path / "out"
    if problem == "not-a-folder":
        out.write_text("a file")
    else:
        out.mkdir(mode=0o700)
        if problem == "not-empty":
            (out / "notes.txt").write_text("mine")
        else:
            out.chmod(0o755)
    result = run(["export", "--plaintext", out], store_env)
    assert result.returncode == 2
    line = one_error(result)
    assert str(out) in line and {"not-empty": "not empty", "mode-0755": "0755",
                                 "not-a-folder": "not a folder"}[problem] in line
    if problem != "not-a-folder":
        assert exported(out) == {}
        if problem == "not-empty":
            forced = run(["export", "--plaintext", "--force", out], store_env)
            assert forced.returncode == 0, forced.stderr
            assert len(exported(out)) == 4 and (out / "notes.txt").read_text() == "mine"


def test_export_into_an_empty_0700_folder_needs_no_force(store_env, tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    out.chmod(0o700)
    assert run(["export", "--plaintext", out], store_env).returncode == 0
    assert len(exported(out)) == 4


def test_export_does_not_follow_planted_symlinks(store_env, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o644)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out / FPS[0]).mkdir(parents=True)
    # The temp names an export used to write through (predictable), and the target itself.
    (out / FPS[0] / ".tmp-chunk-000000.parquet").symlink_to(victim)
    (out / FPS[0] / "chunk-000001.parquet").symlink_to(victim)
    result = run(["export", "--plaintext", "--force", out], store_env)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious" and mode_of(victim) == 0o644
    assert not (out / FPS[0] / "chunk-000001.parquet").is_symlink()
    assert mode_of(out / FPS[0] / "chunk-000001.parquet") == 0o600
    # A video folder that is a symlink is refused, even with --force: nothing lands elsewhere.
    (out / FPS[1]).rename(tmp_path / "moved")
    (out / FPS[1]).symlink_to(elsewhere)
    result = run(["export", "--plaintext", "--force", out], store_env)
    assert result.returncode == 2
    assert "not a plain folder" in one_error(result)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.models
def test_search_html_report_is_0600_and_not_written_through_a_symlink(tmp_path_factory, friends_clip, portraits,
                                                                      weights_dir):
    base = tmp_path_factory.mktemp("report")
    env = {"FACEID_JOBS_STORE": str(base / "store"), "FACEID_JOBS_KEY_FILE": str(base / "key.json"),
           "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu"}
    clip = cut_clip(friends_clip, base / "cut.mp4", 3.0)
    processed = run(["process", clip, "--sample-fps", "2"], env)
    assert processed.returncode == 0, processed.stderr
    report = base / "out" / "ross.html"
    report.parent.mkdir()
    with umask(0o000):
        result = run(["search", portraits["Ross"], "--html", report, "--threshold", "0.1"], env)
    assert result.returncode == 0, result.stderr
    assert mode_of(report) == 0o600 and report.read_text().startswith("<!DOCTYPE html>")
    victim = base / "victim.html"
    victim.write_text("precious")
    report.unlink()
    report.symlink_to(victim)
    with umask(0o000):
        again = run(["search", portraits["Ross"], "--html", report, "--threshold", "0.1"], env)
    assert again.returncode == 0, again.stderr
    assert victim.read_text() == "precious"
    assert not report.is_symlink() and mode_of(report) == 0o600
    assert [p.name for p in report.parent.iterdir()] == ["ross.html"]  # no temp file left
