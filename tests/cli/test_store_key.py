"""A store names the key its data needs: `process`, `search`, `doctor` and `keys rotate` refuse a
missing or different key with exit 4 naming the key id; only an empty store gets a new key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import cut_clip, run

pytestmark = pytest.mark.models

ARGS = ["--sample-fps", "1", "--chunk-seconds", "4"]


@pytest.fixture(scope="module")
def stored(friends_clip, weights_dir, tmp_path_factory):
    """A store processed with a new key (created by `process` on the empty store)."""
    home = tmp_path_factory.mktemp("home")
    clip = cut_clip(friends_clip, home / "cut.mp4", 4.0)
    store = home / "store"
    env = {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "FACEID_JOBS_KEY_FILE": str(home / "key.json")}
    result = run(["process", clip, "--store", store, *ARGS], env)
    return result, store, env, clip


def test_first_process_on_an_empty_store_creates_the_key_and_the_marker(stored):
    result, store, env, _ = stored
    assert result.returncode == 0, result.stderr
    key_id = json.loads(Path(env["FACEID_JOBS_KEY_FILE"]).read_text())["key_id"]
    assert result.stderr.count(key_id) == 1 and "back it up" in result.stderr  # announced, once
    marker = json.loads((store / "keys" / "kek.json").read_text())
    assert marker == {"format": 1, "kek_id": key_id}  # the id, never the key


def _refused(result, needed: str, have: str) -> None:
    assert result.returncode == 4, result.stderr
    said = result.stdout + result.stderr  # doctor lists its problems on stdout
    assert "Traceback" not in said
    assert f"needs key {needed}" in said and f"this machine has key {have}" in said


def _other_key(env: dict[str, str], which: str, tmp_path: Path) -> tuple[str, Path, dict[str, str], str]:
    """The key the store needs, and an env whose key file is missing or holds another key (its id, or "none")."""
    needed = json.loads(Path(env["FACEID_JOBS_KEY_FILE"]).read_text())["key_id"]
    other = tmp_path / "key.json"
    env = env | {"FACEID_JOBS_KEY_FILE": str(other)}
    have = "none"
    if which == "different":
        made = run(["keys", "init"], env)
        assert made.returncode == 0, made.stderr
        have = json.loads(other.read_text())["key_id"]
    return needed, other, env, have


@pytest.mark.parametrize("which", ["missing", "different"])
def test_commands_refuse_a_missing_or_different_key(stored, which, tmp_path, portraits):
    _, store, env, clip = stored
    needed, other, env, have = _other_key(env, which, tmp_path)
    photo = next(iter(portraits.values()))
    for args in (["process", clip, "--store", store, *ARGS], ["search", photo, "--store", store],
                 ["doctor", "--store", store]):
        result = run(args, env)
        _refused(result, needed, have)
    assert other.exists() == (which == "different")  # `process` made no new key beside the data


@pytest.mark.parametrize("which", ["missing", "different"])
def test_keys_rotate_refuses_a_missing_or_different_key(stored, which, tmp_path):
    """Rotating from a key the data is not under would point the marker at data keys it never wrapped:
    refused before the lease or a new key file, the marker and the key file left as they were."""
    _, store, env, _ = stored
    needed, other, env, have = _other_key(env, which, tmp_path)
    before = other.read_bytes() if other.exists() else None
    marker = (store / "keys" / "kek.json").read_bytes()
    result = run(["keys", "rotate", "--store", store], env)
    _refused(result, needed, have)
    assert result.stderr.count("\n") == 1  # one line
    assert (store / "keys" / "kek.json").read_bytes() == marker
    assert not (store / "journal" / "rotation.json").exists()  # no lease taken
    assert sorted(p.name for p in tmp_path.iterdir()) == (["key.json"] if before else [])  # no .next, no retired
    assert (other.read_bytes() if other.exists() else None) == before
