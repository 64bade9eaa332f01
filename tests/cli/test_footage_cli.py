"""Footage as users have it (issue 18), through the installed command: turned frames,
rotation metadata, --exclude and the skipped-files report, fail_on_bad_files."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.cli.runner import cut_clip, run
from tests.footage_clips import set_display_rotation, turned_clip

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def env(weights_dir):
    return {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, friends_clip):
    """6 s of the clip (shot 1: Rachel, Joey; shot 2 begins): upright, turned 90° clockwise with
    no metadata (a camera on its side), and stored turned with a display matrix (a phone clip)."""
    folder = tmp_path_factory.mktemp("footage")
    return {
        "upright": cut_clip(friends_clip, folder / "upright.mp4", 6.0),
        "sideways": turned_clip(friends_clip, folder / "sideways.mp4", 6.0, 90),
        "phone": set_display_rotation(turned_clip(friends_clip, folder / "phone.mp4", 6.0, 90), 270),
    }


def process(env, store, *args):
    result = run(["process", *map(str, args), "--store", store, "--json"], env)
    assert "Traceback" not in result.stderr
    return result, json.loads(result.stdout)


def rachel(env, store, portraits):
    result = run(["search", portraits["Rachel"], "--store", store, "--json"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["hits"]


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def upright(env, clips, portraits, tmp_path_factory):
    store = tmp_path_factory.mktemp("upright-store")
    result, summary = process(env, store, clips["upright"])
    assert result.returncode == 0, result.stderr
    return summary["faces"], rachel(env, store, portraits)


def test_rotate_auto_finds_sideways_faces_and_rachel(env, clips, portraits, upright, tmp_path):
    upright_faces, upright_hits = upright
    store = tmp_path / "store"
    _, plain = process(env, store, clips["sideways"])
    assert plain["faces"] < 0.8 * upright_faces, "sideways frames lose faces when analysed as they are"

    # rotate enters the analysis id: the same video is analysed again, not skipped.
    result, auto = process(env, store, clips["sideways"], "--rotate", "auto")
    assert result.returncode == 0, result.stderr
    assert auto["chunks"]["done"] == 1 and auto["chunks"]["skipped"] == 0
    assert abs(auto["faces"] - upright_faces) <= 0.1 * upright_faces, (auto["faces"], upright_faces)

    hits = rachel(env, store, portraits)
    assert hits, "Rachel is found in the sideways clip"
    # Boxes are stored in the decoded (sideways, 720x1280) frame: Rachel's box is her upright
    # box turned the same way (the shot is static, so any of her frames will do).
    x1, y1, x2, y2 = upright_hits[0]["bbox"]
    expected = [720 - y2, x1, 720 - y1, x2]
    assert max(hits[0]["bbox"][2], hits[0]["bbox"][0]) <= 720 and hits[0]["bbox"][3] <= 1280
    assert iou(hits[0]["bbox"], expected) > 0.6, (hits[0]["bbox"], expected)


def test_rotate_fixed_turns_every_frame(env, clips, upright, tmp_path):
    result, summary = process(env, tmp_path / "store", clips["sideways"], "--rotate", "270")
    assert result.returncode == 0, result.stderr
    assert abs(summary["faces"] - upright[0]) <= 0.1 * upright[0]


def test_rotate_rejects_other_angles(env, clips, tmp_path):
    result = run(["process", clips["upright"], "--store", tmp_path / "s", "--rotate", "45"], env)
    assert result.returncode == 2 and "rotate must be 0, 90, 180, 270 or auto" in result.stderr
    assert result.stderr.count("\n") == 1


def test_rotation_metadata_is_honoured(env, clips, portraits, upright, tmp_path):
    store = tmp_path / "store"
    result, summary = process(env, store, clips["phone"])  # rotate = 0: the metadata alone
    assert result.returncode == 0, result.stderr
    assert abs(summary["faces"] - upright[0]) <= 0.1 * upright[0]
    hits = rachel(env, store, portraits)
    assert hits and iou(hits[0]["bbox"], upright[1][0]["bbox"]) > 0.6  # landscape frame coordinates


@pytest.fixture(scope="module")
def folder(tmp_path_factory, friends_clip, media_dir):
    """A footage folder as users keep one: a video, a proxy copy, a photo, notes, a broken file."""
    root = tmp_path_factory.mktemp("walk")
    cut_clip(friends_clip, root / "a.mp4", 1.0)
    (root / "proxies").mkdir()
    shutil.copy(root / "a.mp4", root / "proxies" / "a_proxy.mp4")
    shutil.copy(media_dir / "friends" / "faces" / "Rachel.png", root / "still.png")
    (root / "notes.txt").write_text("shot list")
    return root


def test_exclude_and_skipped_files_are_reported(env, folder, tmp_path):
    store = tmp_path / "store"
    result, summary = process(env, store, folder, "--exclude", "proxies/*", "--exclude", "*.txt", "--no-index")
    assert result.returncode == 0, result.stderr
    assert summary["videos"] == 1
    skipped = {os.path.relpath(f["path"], folder): f["reason"] for f in summary["skipped_files"]}
    assert skipped == {"proxies/a_proxy.mp4": "excluded", "notes.txt": "excluded", "still.png": "photo"}
    assert "3 file(s) left out of the folder walk (2 excluded, 1 photo)" in result.stderr

    table = run(["process", folder, "--store", store, "--no-index"], env)
    assert table.returncode == 0, table.stderr
    assert "files skipped (not videos, excluded)" in table.stdout
    assert "2 file(s) left out of the folder walk (1 not a video extension, 1 photo)" in table.stderr
    quiet = run(["process", folder, "--store", store, "--no-index", "-q"], env)
    assert quiet.returncode == 0 and quiet.stderr == ""

    # A name pattern also leaves out a file named on the command line.
    result, summary = process(env, store, folder / "a.mp4", "--exclude", "a.*", "--no-index")
    assert summary["videos"] == 0 and summary["skipped_files"] == [
        {"path": str(folder / "a.mp4"), "reason": "excluded"}]


def test_fail_on_bad_files(env, folder, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    shutil.copy(folder / "a.mp4", bad / "a.mp4")
    (bad / "broken.mp4").write_bytes(os.urandom(50_000))
    store = tmp_path / "store"

    result, summary = process(env, store, bad, "--no-index")
    assert result.returncode == 1 and not summary["ok"]
    assert summary["bad_files"] == [str(bad / "broken.mp4")]

    config = tmp_path / "nightly.toml"
    config.write_text("fail_on_bad_files = false\n")
    result, summary = process(env, store, bad, "--no-index", "--config", config)
    assert result.returncode == 0 and summary["ok"], result.stderr
    assert summary["bad_files"] == [str(bad / "broken.mp4")]
    assert [f["video"] for f in summary["failures"]] == [str(bad / "broken.mp4")]

    table = run(["process", bad, "--store", store, "--no-index"], {**env, "FACEID_JOBS_FAIL_ON_BAD_FILES": "false"})
    assert table.returncode == 0 and "unreadable videos" in table.stdout
    assert "bad file:" in table.stderr and "broken.mp4" in table.stderr
