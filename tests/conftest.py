"""Shared fixtures: where the real weights and media are, and a scratch store.

Real weights and footage live beside the repo (`../shared`), never in it.
`FACEID_JOBS_WEIGHTS_DIR` / `FACEID_JOBS_MEDIA_DIR` point elsewhere. On a
user's machine without them the tests that need them skip with the reason; in
CI (`CI=true`) a missing folder is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def _required_dir(env_name: str, default: Path, what: str) -> Path:
    path = Path(os.environ.get(env_name) or default)
    if not path.is_dir():
        message = f"{what} not found at {path} (set {env_name})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """Folder holding the real ONNX models (../shared/weights by default)."""
    return _required_dir("FACEID_JOBS_WEIGHTS_DIR", SHARED / "weights", "model weights")


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """Folder holding the real test media (../shared/media by default)."""
    return _required_dir("FACEID_JOBS_MEDIA_DIR", SHARED / "media", "test media")


@pytest.fixture(scope="session")
def friends_clip(media_dir: Path) -> Path:
    return media_dir / "friends" / "in_video.mp4"


@pytest.fixture(scope="session")
def portraits(media_dir: Path) -> dict[str, Path]:
    """Identity name -> portrait photo of the six Friends characters."""
    folder = media_dir / "friends" / "faces"
    return {p.stem: p for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="session")
def cpu_settings(weights_dir: Path):
    """Settings for the real models on CPU, independent of the user's env."""
    from faceid_jobs.config import Settings

    return Settings(weights_dir=str(weights_dir), device="cpu")


@pytest.fixture(scope="session")
def models(cpu_settings):
    """The real model set, loaded once for the whole session."""
    from faceid_jobs.models import load_models

    return load_models(cpu_settings)


@pytest.fixture(scope="session", autouse=True)
def _private_config_home(tmp_path_factory):
    """Key files and caches made by tests land in a temp dir, never in ~/.config."""
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config-home"))
    yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old


@pytest.fixture(scope="session", autouse=True)
def _private_state_home(tmp_path_factory):
    """Index high-water marks made by tests land in a temp dir, never in ~/.local/state."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture(scope="session")
def make_workspace(tmp_path_factory):
    """Factory: a fresh store with its own key file -> Workspace."""

    def make(store=None, key_file=None):
        from faceid_jobs.config import Settings
        from faceid_jobs.storage import LocalStore
        from faceid_jobs.workspace import open_workspace

        base = tmp_path_factory.mktemp("ws")
        settings = Settings(key_file=str(key_file or base / "key.json"))
        return open_workspace(settings, create_key=True, store=store or LocalStore(base / "store"))

    return make


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 (and KMS) HTTP endpoint on 127.0.0.1: moto's threaded server."""
    from bench.loopback_s3 import moto_server

    with moto_server("testing", AWS_MAX_ATTEMPTS="3") as env:
        yield env


@pytest.fixture()
def s3_bucket(s3_server, request):
    """A fresh, empty bucket; yields its name."""
    import re
    import uuid

    from faceid_jobs.storage.s3 import make_client

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:8]
    make_client().create_bucket(Bucket=name)
    return name
