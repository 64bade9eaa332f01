"""Keys missing or exposed, and what the logs may never contain."""

from __future__ import annotations

import base64
import os
import re
import stat

import pytest

from tests.cli.runner import cut_clip, run

pytestmark = [pytest.mark.faults, pytest.mark.models]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, weights_dir, friends_clip):
    base = tmp_path_factory.mktemp("keys")
    clip = cut_clip(friends_clip, base / "clip.mp4", 3.0)
    secret = os.urandom(32)
    env = {"FACEID_JOBS_STORE": str(base / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
           "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY": base64.b64encode(secret).decode(),
           "PREFECT_HOME": str(base / "prefect")}
    result = run(["process", clip, "--sample-fps", "2", "-vv"], env)
    assert result.returncode == 0, result.stderr
    return base, env, secret, result


def test_logs_hold_no_key_embedding_or_image(setup, portraits):
    _, env, secret, processed = setup
    searched = run(["search", portraits["Rachel"], "--json"], env)
    assert searched.returncode == 0, searched.stderr
    logs = processed.stdout + processed.stderr + searched.stderr
    assert "DEBUG" in logs or "INFO" in logs  # the verbose run did log
    for needle in (base64.b64encode(secret).decode(), secret.hex(), base64.urlsafe_b64encode(secret).decode()):
        assert needle not in logs
    assert "/9j/" not in logs and "iVBORw0KGgo" not in logs  # base64 JPEG/PNG data
    # No vector dumps: 8+ floats in a row would be an embedding or a crop.
    assert not re.search(r"(-?\d+\.\d+[,\s]+){8,}", logs)


def test_missing_key_is_a_clear_error(setup, portraits, tmp_path):
    """The store holds data: the line names the key it needs and where this machine looked."""
    _, env, _, _ = setup
    no_key = {k: v for k, v in env.items() if k != "FACEID_JOBS_KEY"} | {
        "FACEID_JOBS_KEY_FILE": str(tmp_path / "deleted.json")}
    result = run(["search", portraits["Rachel"]], no_key)
    assert result.returncode == 4
    assert "needs key local-" in result.stderr and "has key none: no " in result.stderr
    assert "deleted.json" in result.stderr and "Traceback" not in result.stderr


def test_world_readable_key_file_is_refused(setup, portraits, tmp_path):
    _, env, _, _ = setup
    key_file = tmp_path / "key.json"
    env2 = {k: v for k, v in env.items() if k != "FACEID_JOBS_KEY"} | {"FACEID_JOBS_KEY_FILE": str(key_file)}
    assert run(["keys", "init"], env2).returncode == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_file.chmod(0o644)
    result = run(["search", portraits["Rachel"]], env2)
    assert result.returncode == 2 and "accessible to other users" in result.stderr
