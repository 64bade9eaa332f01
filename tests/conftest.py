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
