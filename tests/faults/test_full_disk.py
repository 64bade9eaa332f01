"""A full disk is not a transient error: `process` on a store whose filesystem is full fails
each write at once, with one line naming the path and the free space, and never waits to retry.

The store is a small tmpfs (mounting needs root, as in CI; elsewhere the test skips).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.runner import cut_clip, run

pytestmark = [pytest.mark.models, pytest.mark.faults]


@pytest.fixture()
def full_store(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        # Fill it, then free 8 KiB: enough for the store's write check, not for a chunk's records.
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        os.truncate(filler, max(0, filler.stat().st_size - 8192))
        yield mount / "store"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_at_once_with_the_path_and_free_space(full_store, friends_clip, weights_dir, tmp_path):
    footage = tmp_path / "footage"
    footage.mkdir()
    for i in range(3):
        cut_clip(friends_clip, footage / f"clip{i}.mp4", 2.0, start_frame=48 * i)
    env = {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json")}
    result = run(["process", footage, "--store", full_store, "--sample-fps", "2", "--json"], env, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    # Not retried: the engine logs every retry it makes, and there are none.
    assert "retry" not in result.stderr.lower()
    # The run stops at the first write the full disk refuses: one error (`--json`: {"error": …}).
    answer = json.loads(result.stdout) if result.stdout.strip() else {}
    errors = [f["error"] for f in answer.get("failures", [])] or [answer.get("error") or result.stderr]
    assert errors and all("No space left on device" in e and "MiB free there" in e for e in errors), errors
    assert all(str(full_store) in e for e in errors)
    # Nothing half-written is visible in the store.
    assert not [p for p in Path(full_store).rglob("*.parquet")]
