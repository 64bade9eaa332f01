"""A real store made with the CLI, shared by the integrity attack tests (copied per test)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.runner import cut_clip, run
from tests.faults.stores import copy_to_s3

# Two cuts of the Friends clip (start frame, seconds): shot 3 (Phoebe, Ross), shot 4 (Rachel, Joey; no Ross).
CUTS = {"ross.mp4": (280, 3.0), "rachel.mp4": (402, 2.0)}
ENROLLED = ("Rachel", "Ross")


@dataclass
class BuiltStore:
    root: Path  # store/, key.json, state/ (this client's high-water marks), videos/, faces/
    env: dict[str, str]

    @property
    def store(self) -> Path:
        return self.root / "store"


def store_env(root: Path, weights_dir: Path) -> dict[str, str]:
    return {"FACEID_JOBS_STORE": str(root / "store"), "FACEID_JOBS_KEY_FILE": str(root / "key.json"),
            "FACEID_JOBS_STATE_DIR": str(root / "state"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
            "FACEID_JOBS_DEVICE": "cpu"}


@pytest.fixture(scope="session")
def pristine_store(tmp_path_factory, weights_dir, friends_clip, portraits) -> BuiltStore:
    """Ross and Rachel enrolled, two 3-s cuts processed at 2 frames/s in 1-s chunks, all by the CLI."""
    root = tmp_path_factory.mktemp("integrity")
    faces = root / "faces"
    faces.mkdir()
    for name in ENROLLED:
        shutil.copy(portraits[name], faces / f"{name}.png")
    videos = root / "videos"
    videos.mkdir()
    for name, (start, seconds) in CUTS.items():
        cut_clip(friends_clip, videos / name, seconds, start)
    env = store_env(root, weights_dir)
    assert run(["keys", "init"], env).returncode == 0  # enroll never makes a key
    enrolled = run(["enroll", "--from-dir", faces], env)
    assert enrolled.returncode == 0, enrolled.stderr
    processed = run(["process", videos, "--sample-fps", "2", "--chunk-seconds", "1", "--json"], env)
    assert processed.returncode == 0, processed.stderr
    return BuiltStore(root, env)


@pytest.fixture()
def built(pristine_store, tmp_path, weights_dir, request) -> BuiltStore:
    """A private copy of the pristine store (its own path, so its own high-water mark). Parametrized
    indirectly with "s3", the store is a bucket on the loopback S3 server (`env` names it; `store` does not
    exist then) and the rest (key file, videos, faces) a local copy."""
    root = tmp_path / "copy"
    on_s3 = getattr(request, "param", "local") == "s3"
    skip = ("state", "store") if on_s3 else ("state",)
    shutil.copytree(pristine_store.root, root, symlinks=True, ignore=shutil.ignore_patterns(*skip))
    env = store_env(root, weights_dir)
    if on_s3:
        env["FACEID_JOBS_STORE"] = copy_to_s3(pristine_store.store, request.getfixturevalue("s3_bucket"))
    return BuiltStore(root, env)


def cli_json(args, env) -> dict:
    result = run([*args, "--json"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_refused(result, *names: str) -> None:
    """Exit 4, one line naming the object (on stderr, or as the JSON error on stdout under --json),
    no traceback."""
    assert result.returncode == 4, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if not lines and result.stdout.lstrip().startswith("{"):
        error = json.loads(result.stdout)
        assert error["exit"] == 4 and error["code"] == "integrity", error
        lines = [error["error"]]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for name in names:
        assert name in lines[0], (name, lines[0])
