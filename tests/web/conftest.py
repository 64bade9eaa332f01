"""A small indexed store shared by the report and API tests.

Three seconds of shot 3 of the Friends clip (Phoebe and Ross), processed at
2 frames/s with the real models into a temp store: a few seconds on CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.runner import cut_clip
from tests.friends import SHOTS


@dataclass(frozen=True)
class IndexedCut:
    root: Path
    video: Path
    settings: object  # faceid_jobs.config.Settings
    key_file: Path

    def env(self, weights_dir: Path) -> dict[str, str]:
        """FACEID_JOBS_* variables that point a subprocess at this store."""
        return {"FACEID_JOBS_STORE": str(self.root / "store"), "FACEID_JOBS_KEY_FILE": str(self.key_file),
                "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu"}


@pytest.fixture(scope="session")
def indexed_cut(tmp_path_factory, friends_clip, cpu_settings, models) -> IndexedCut:
    from faceid_jobs.pipeline.process import process_sources
    from faceid_jobs.workspace import open_workspace

    root = tmp_path_factory.mktemp("web")
    video = cut_clip(friends_clip, root / "shot3.mp4", 3.0, start_frame=SHOTS[3][0])
    key_file = root / "key.json"
    settings = cpu_settings.replace(store=str(root / "store"), key_file=str(key_file), sample_fps=2.0)
    ws = open_workspace(settings, create_key=True)
    summary = process_sources([str(video)], settings, ws, models)
    assert not summary.failures and summary.indexed_vectors, summary.to_json()
    return IndexedCut(root, video, settings, key_file)


@pytest.fixture(scope="session")
def search_for(indexed_cut, models):
    """photo path -> (BGR image, SearchResult) against the indexed cut, in-process."""
    from faceid_jobs.images import read_photo
    from faceid_jobs.index import open_index
    from faceid_jobs.search.query import search_image
    from faceid_jobs.workspace import open_workspace

    s = indexed_cut.settings
    ws = open_workspace(s)

    def search(photo: Path, **kw):
        index = open_index(ws.store, ws.keys)
        image = read_photo(photo)
        no_live = dataclasses.replace(models, liveness=None)  # as the CLI without --require-live
        return image, search_image(image, photo.name, no_live, index, top_k=kw.get("top_k", s.top_k),
                                   threshold=kw.get("threshold", s.threshold),
                                   appearance_gap_s=s.appearance_gap_s)

    return search
