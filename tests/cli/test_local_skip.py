"""A local archive re-checked by its listing: an unchanged file is skipped without a byte read;
a touched or replaced one (new mtime or inode) is read again; `--verify` reads every one again.
The CLI runs in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.cli.runner import cut_clip, run

pytestmark = pytest.mark.models


@pytest.fixture()
def setup(tmp_path, friends_clip, weights_dir):
    folder = tmp_path / "footage"
    folder.mkdir()
    video = cut_clip(friends_clip, folder / "a.mp4", 2.0)
    env = {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json")}
    return folder, video, tmp_path / "store", env


def _process(folder, store, env, *extra) -> dict:
    result = run(["process", folder, "--store", store, "--sample-fps", "1", "--chunk-seconds", "1", "--json",
                  *extra], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_unchanged_file_is_not_read_changed_one_is(setup):
    folder, video, store, env = setup
    first = _process(folder, store, env)
    assert first["videos_unchanged"] == 0 and first["chunks"]["done"] == 2 and first["faces"] > 0

    # Same size, mtime and inode, different bytes: a run that read the file would fingerprint new
    # content and fail to decode it. Skipped and still exit 0: the file was not read.
    st = video.stat()
    original = video.read_bytes()
    with video.open("r+b") as f:
        f.write(os.urandom(len(original)))
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert video.stat().st_ino == st.st_ino
    skipped = _process(folder, store, env)
    assert skipped["videos_unchanged"] == 1 and skipped["chunks"] == {"done": 0, "skipped": 2, "failed": 0}
    assert skipped["faces_in_store"] == first["faces"] and skipped["failures"] == []

    # --verify reads it: the garbage now fails (the listing is not trusted).
    verified = run(["process", folder, "--store", store, "--sample-fps", "1", "--chunk-seconds", "1", "--json",
                    "--verify"], env)
    assert verified.returncode == 1 and json.loads(verified.stdout)["videos_unchanged"] == 0
    assert str(video) in verified.stdout

    # Same bytes as processed, new mtime (touch): read and fingerprinted again; its chunks are found stored.
    video.write_bytes(original)
    touched = _process(folder, store, env)
    assert touched["videos_unchanged"] == 0 and touched["chunks"] == {"done": 0, "skipped": 2, "failed": 0}
    assert _process(folder, store, env)["videos_unchanged"] == 1  # marked again

    # Replaced by a copy with the same mtime (a new inode, as `mv` of a new file gives): read again.
    st = video.stat()
    copy = folder.parent / "copy.mp4"
    shutil.copy2(video, copy)
    os.replace(copy, video)
    assert video.stat().st_ino != st.st_ino and video.stat().st_mtime_ns == st.st_mtime_ns
    replaced = _process(folder, store, env)
    assert replaced["videos_unchanged"] == 0 and replaced["chunks"]["skipped"] == 2


def test_a_mark_forged_without_the_key_does_not_skip_new_footage(setup, friends_clip):
    """The attacker can write the store but holds no key: a copy of a genuine mark, renamed for a new
    video's listed identity (which would have it skipped unread, reported as the old video), is
    refused in one line (exit 4) naming it."""
    from faceid_jobs.video.source import local_source, uri_hash

    folder, _video, store, env = setup
    _process(folder, store, env)
    new = cut_clip(friends_clip, folder / "b.mp4", 2.0, start_frame=300)
    [genuine] = (store / "sources").rglob("*.json")
    listed = local_source(new)
    forged = store / "sources" / uri_hash(listed.location) / listed.identity_hash("sampled") / genuine.name
    forged.parent.mkdir(parents=True)
    forged.write_bytes(genuine.read_bytes())
    result = run(["process", folder, "--store", store, "--sample-fps", "1", "--chunk-seconds", "1"], env)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "fails authentication" in result.stderr and forged.relative_to(store).as_posix() in result.stderr
    assert "Traceback" not in result.stderr
