"""`process` refuses, before any orchestration starts, a run that cannot do anything: every source
missing (exit 2, one line naming them), models missing (exit 5); nothing is created. A missing
source among others is a failure of the run (exit 1) as before."""

from __future__ import annotations

import json
import time

import pytest

from tests.cli.runner import cut_clip, run


def _env(tmp_path, weights_dir) -> dict[str, str]:
    return {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
            "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json"), "FACEID_JOBS_STORE": str(tmp_path / "store")}


def test_a_missing_source_is_refused_at_once(tmp_path, weights_dir):
    started = time.monotonic()
    result = run(["process", "does-not-exist/"], _env(tmp_path, weights_dir), cwd=tmp_path)
    seconds = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert seconds < 2, f"took {seconds:.1f} s"
    assert result.stderr == "error: does-not-exist/: file not found\n"
    assert result.stdout == ""  # no summary table of zeros
    assert not (tmp_path / "key.json").exists() and not (tmp_path / "store").exists()


def test_every_source_missing_is_named_in_one_line(tmp_path, weights_dir):
    result = run(["process", "gone.mp4", "none-*.mkv", "--json"], _env(tmp_path, weights_dir), cwd=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)
    assert error["error"] == "gone.mp4: file not found; none-*.mkv: pattern matches no files"
    assert error["exit"] == 2 and not (tmp_path / "key.json").exists()


def test_missing_models_are_refused_before_the_run(tmp_path, weights_dir):
    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"not looked at")
    env = _env(tmp_path, weights_dir) | {"FACEID_JOBS_WEIGHTS_DIR": str(tmp_path / "no-weights")}
    result = run(["process", clip], env)
    assert result.returncode == 5, result.stderr
    assert result.stderr.count("\n") == 1 and "no-weights" in result.stderr
    assert not (tmp_path / "key.json").exists() and not (tmp_path / "store").exists()


@pytest.mark.models
def test_a_missing_source_among_others_is_a_failure_of_the_run(tmp_path, weights_dir, friends_clip):
    clip = cut_clip(friends_clip, tmp_path / "cut.mp4", 2.0)
    result = run(["process", clip, tmp_path / "gone.mp4", "--sample-fps", "1", "--json"],
                 _env(tmp_path, weights_dir))
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["chunks"]["done"] == 1
    assert [f["error"] for f in summary["failures"]] == [f"{tmp_path / 'gone.mp4'}: file not found"]
