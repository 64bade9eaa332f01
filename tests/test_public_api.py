"""The package root's public API, used as the README shows: process footage, search a photo;
the answer is the CLI's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli.runner import cut_clip, run

pytestmark = pytest.mark.models


def test_import_is_cheap_and_names_resolve_on_use():
    code = "import sys, faceid_jobs; print(sorted(m for m in ('numpy', 'prefect', 'cv2') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
    import faceid_jobs

    assert {"process", "RunOptions", "search_photo", "load_models", "load_settings", "analyse"} <= set(dir(faceid_jobs))
    with pytest.raises(AttributeError):
        faceid_jobs.no_such_thing  # noqa: B018


def test_process_then_search_photo_gives_the_cli_answer(tmp_path, friends_clip, portraits, weights_dir):
    import faceid_jobs

    clip = cut_clip(friends_clip, tmp_path / "cut.mp4", 4.0, start_frame=270)
    settings = faceid_jobs.Settings(store=str(tmp_path / "store"), key_file=str(tmp_path / "key.json"),
                                    weights_dir=str(weights_dir), device="cpu", sample_fps=2.0)
    summary = faceid_jobs.process([str(clip)], settings)
    assert summary.ok and summary.faces > 0 and summary.orchestrator == "local"
    result = faceid_jobs.search_photo(portraits["Ross"], settings)
    assert result.hits
    cli = run(["search", portraits["Ross"], "--json"],
              {"FACEID_JOBS_STORE": settings.store, "FACEID_JOBS_KEY_FILE": settings.key_file,
               "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu"})
    assert cli.returncode == 0, cli.stderr
    assert [h["face_id"] for h in json.loads(cli.stdout)["hits"]] == [h.face_id for h in result.hits]
