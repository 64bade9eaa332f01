"""Fixtures of the flow tests: one Prefect test server for the session, test clips, settings.

Prefect's home (its SQLite database, profiles) goes to a temporary folder,
set before Prefect is imported, so nothing lands in ~/.prefect.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

PREFECT_HOME = Path(tempfile.mkdtemp(prefix="faceid-prefect-home-"))
os.environ["PREFECT_HOME"] = str(PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

CLIP_SECONDS = 4
# Friends clip frames: shot 1 (0-103, Rachel and Joey), shot 2 (104-269, Monica and Chandler).
CLIP_STARTS = {"a.mp4": 0, "b.mp4": 110}


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server (SQLite in a temp dir) for every flow test; yields its API URL."""
    from prefect.settings import PREFECT_HOME as HOME_SETTING
    from prefect.settings import get_current_settings, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({HOME_SETTING: str(PREFECT_HOME)}), \
            prefect_test_harness(server_startup_timeout=120):
        yield get_current_settings().api.url
    shutil.rmtree(PREFECT_HOME, ignore_errors=True)


def _write_clip(src: Path, dst: Path, start: int, seconds: float, size=None, fourcc="mp4v") -> int:
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    ok, frame = cap.read()
    h, w = frame.shape[:2] if size is None else size[::-1]
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    n = 0
    while ok and n < round(seconds * fps):
        writer.write(frame if size is None else cv2.resize(frame, (w, h)))
        n += 1
        ok, frame = cap.read()
    writer.release()
    cap.release()
    return n


@pytest.fixture(scope="session")
def clips(tmp_path_factory, friends_clip) -> Path:
    """A folder with two 4-second clips cut from the Friends clip (2 chunks each at 2 s)."""
    folder = tmp_path_factory.mktemp("clips")
    for name, start in CLIP_STARTS.items():
        assert _write_clip(friends_clip, folder / name, start, CLIP_SECONDS) == 96
    return folder


@pytest.fixture(scope="session")
def bad_folder(tmp_path_factory, friends_clip, clips) -> Path:
    """A good clip, a file of random bytes, and an AVI cut short in its second chunk."""
    folder = tmp_path_factory.mktemp("bad")
    shutil.copy(clips / "a.mp4", folder / "a.mp4")
    (folder / "garbage.mp4").write_bytes(os.urandom(64_000))
    whole = folder / "whole.avi"
    _write_clip(friends_clip, whole, 0, CLIP_SECONDS, size=(640, 360), fourcc="MJPG")
    data = whole.read_bytes()
    (folder / "truncated.avi").write_bytes(data[: int(len(data) * 0.6)])
    whole.unlink()
    return folder


@pytest.fixture(scope="session")
def flow_settings(cpu_settings, tmp_path_factory):
    """The real models on CPU, sampled thinly (2 frames per second, 2-second chunks), with a
    key file of the session's own (created by the first run that writes)."""
    key_file = tmp_path_factory.mktemp("keys") / "key.json"
    return cpu_settings.replace(sample_fps=2.0, chunk_seconds=2.0, key_file=str(key_file))


@pytest.fixture(scope="session")
def first_run(prefect_server, clips, flow_settings, tmp_path_factory):
    """The two clips processed once into a fresh store: state, summary, store, its file digests
    right after, and how many model sets this process loaded for it."""
    from faceid_jobs.pipeline.steps import MODEL_POOL as _POOL
    from tests.flows.util import run_reprocess_flow, snapshot

    _POOL.clear()
    store = tmp_path_factory.mktemp("store")
    state, summary = run_reprocess_flow([clips], flow_settings, store)
    return {"state": state, "summary": summary, "store": store, "files": snapshot(store),
            "loads": model_loads()}


def model_loads() -> int:
    """Model sets loaded so far by this process's pool."""
    from faceid_jobs.pipeline.steps import MODEL_POOL as _POOL

    return sum(_POOL.loaded().values())


@pytest.fixture()
def store_copy(first_run, tmp_path) -> Path:
    """A copy of the first run's store, for tests that write to it."""
    copy = tmp_path / "store"
    shutil.copytree(first_run["store"], copy)
    return copy
