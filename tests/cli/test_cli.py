"""The installed `faceid-jobs` command, run as a user would (real process, real models)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli.runner import cut_clip, run
from tests.friends import shot_of

pytestmark = pytest.mark.models

@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir):
    store = tmp_path_factory.mktemp("cli-store")
    return {"FACEID_JOBS_STORE": str(store), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
            "FACEID_JOBS_DEVICE": "cpu"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, friends_clip):
    """A folder with a 6-second cut of the clip (shots 1-2) and a corrupt file."""
    folder = tmp_path_factory.mktemp("clips")
    cut_clip(friends_clip, folder / "cut.mp4", 6.0)
    (folder / "broken.mp4").write_bytes(os.urandom(50_000))
    return folder


def test_installed_command_works_from_any_directory(tmp_path):
    result = run(["--help"], cwd=tmp_path)
    assert result.returncode == 0 and "process" in result.stdout and "search" in result.stdout


def test_search_without_index_exits_2(env, portraits, tmp_path):
    result = run(["search", portraits["Ross"], "--store", tmp_path / "empty"], env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no index yet" in result.stderr
    assert "Traceback" not in result.stderr


def test_process_reports_bad_file_and_keeps_going(env, clips):
    result = run(["process", clips, "--sample-fps", "2", "--chunk-seconds", "3", "--json"], env)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["videos"] == 2
    assert summary["chunks"] == {"done": 2, "skipped": 0, "failed": 0}
    # index_by = "track" (the default): fewer vectors than faces.
    assert summary["faces"] > 0 and 0 < summary["indexed_vectors"] < summary["faces_in_store"]
    [failure] = summary["failures"]
    assert failure["video"].endswith("broken.mp4") and "broken.mp4" in failure["error"]
    assert "\n" not in failure["error"]
    assert "Traceback" not in result.stderr

    again = json.loads(run(["process", clips / "cut.mp4", "--sample-fps", "2",
                            "--chunk-seconds", "3", "--json"], env).stdout)
    assert again["chunks"] == {"done": 0, "skipped": 2, "failed": 0}
    assert again["faces_in_store"] == summary["faces_in_store"]


def test_search_json_and_table(env, clips, portraits):
    result = run(["search", portraits["Rachel"], "--json", "--top-k", "50"], env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"schema", "query", "hits", "index"} and data["schema"] == 1
    assert set(data["query"]) >= {"photo", "bbox", "det_score"}
    assert data["hits"], "Rachel is in shot 1 of the cut"
    for hit in data["hits"]:
        assert set(hit) >= {"video", "timestamp_s", "frame", "bbox", "similarity", "face_id"}
        assert shot_of(hit["frame"]) == 1 and hit["similarity"] >= 0.4
    table = run(["search", portraits["Rachel"], "--top-k", "3"], env)
    assert table.returncode == 0 and "cut.mp4" in table.stdout and "00:0" in table.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.jpg", "file not found"),
        (lambda d: (d / "notes.jpg").write_text("hello") and d / "notes.jpg", "not a readable image"),
        (lambda d: cv2.imwrite(str(d / "blank.png"), np.full((300, 300, 3), 200, np.uint8))
         and d / "blank.png", "no face"),
        (lambda d: d, "directory"),
    ],
)
def test_search_bad_photos_exit_2_with_one_line(env, clips, tmp_path, make, message):
    photo = make(tmp_path)
    result = run(["search", photo], env)
    assert result.returncode == 2
    assert message in result.stderr and str(Path(photo).name) in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_doctor_reports_models_and_store(env):
    result = run(["doctor", "--json"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["providers"] == ["CPUExecutionProvider"]
    roles = {m["role"] for m in report["models"]}
    assert {"detector", "embedder"} <= roles
    assert all(len(m["sha256"]) == 64 for m in report["models"])
    assert report["embedding_dim"] == 512 and report["store"]["reachable"]


def test_doctor_missing_weights_fails_clearly(tmp_path):
    env = {"FACEID_JOBS_WEIGHTS_DIR": str(tmp_path), "FACEID_JOBS_STORE": str(tmp_path / "s")}
    result = run(["doctor"], env)
    assert result.returncode != 0 and "det_500m.onnx" in result.stdout + result.stderr
