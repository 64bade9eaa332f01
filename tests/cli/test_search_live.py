"""`search --require-live` and `--min-liveness`, run as a user would (real process, real models).

The spoof is refused before the index is opened, so it is refused even on an
empty store; the live photo is accepted and searched against an index of a
2-second cut of the Friends clip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytestmark = pytest.mark.models

EXE = Path(sys.executable).parent / "faceid-jobs"


def run(args, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")}
    env.update(env_extra)
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir, friends_clip):
    """A store holding the index of the first 2 seconds of the clip (Rachel and Joey)."""
    root = tmp_path_factory.mktemp("live-cli")
    cap = cv2.VideoCapture(str(friends_clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = cv2.VideoWriter(str(root / "cut.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1280, 720))
    for _ in range(int(2 * fps)):
        writer.write(cap.read()[1])
    writer.release()
    cap.release()
    env = {"FACEID_JOBS_STORE": str(root / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
           "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(root / "key.json")}
    result = run(["process", root / "cut.mp4", "--json"], env)
    assert result.returncode == 0, result.stderr
    return env


@pytest.mark.parametrize("store", ["indexed", "empty"])
def test_spoof_is_refused_with_exit_3_and_one_line(env, media_dir, tmp_path, store):
    extra = {} if store == "indexed" else {"FACEID_JOBS_STORE": str(tmp_path / "nothing")}
    result = run(["search", "--require-live", media_dir / "liveness" / "spoof_print_1.jpg"], env | extra)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "spoof_print_1.jpg" in result.stderr and "live_threshold 0.5" in result.stderr
    assert result.stdout == ""


def test_live_photo_is_accepted(env, media_dir):
    result = run(["search", "--require-live", media_dir / "liveness" / "live_1.jpg", "--json"], env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["query"]["liveness"] >= 0.5 and data["hits"] == []  # a stranger to the clip


def test_min_liveness_filters_hits_and_needs_no_liveness_model(env, portraits):
    every = json.loads(run(["search", portraits["Rachel"], "--json"], env).stdout)
    live = run(["search", portraits["Rachel"], "--json", "--min-liveness", "0.99"], env)
    assert live.returncode == 0, live.stderr
    data = json.loads(live.stdout)
    assert every["hits"], "Rachel is in the cut"
    assert data["query"]["liveness"] is None  # liveness models were not loaded
    assert all(h["liveness"] >= 0.99 for h in data["hits"]) and len(data["hits"]) <= len(every["hits"])
    assert set(every["hits"][0]) >= {"video", "timestamp_s", "similarity", "liveness", "quality", "bbox"}
