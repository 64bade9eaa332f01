"""`run_reprocess` (what `faceid-jobs process` calls): on a configured server, and on Prefect's
embedded server in a fresh process with no PREFECT_API_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from uuid import UUID

import pytest

pytestmark = pytest.mark.models


def test_runs_on_the_configured_server_and_returns_the_run_id(prefect_server, clips, flow_settings, tmp_path):
    from prefect.client.orchestration import get_client

    from faceid_jobs.flows.runner import run_reprocess
    from faceid_jobs.pipeline.process import ProcessObserver

    events = []

    class Recorder(ProcessObserver):
        def videos_found(self, count):
            events.append(("videos_found", count))

        def video_started(self, plan):
            events.append(("video_started", plan.uri))

        def chunk_finished(self, plan, frames, result):
            events.append(("chunk_finished", plan.uri))

        def video_finished(self, uri):
            events.append(("video_finished", uri))

        def indexing(self):
            events.append(("indexing",))

    settings = flow_settings.replace(store=str(tmp_path / "store"))
    summary = run_reprocess([str(clips / "b.mp4")], settings, retry_delay_seconds=0, observer=Recorder())
    assert summary["chunks"] == {"done": 2, "skipped": 0, "failed": 0}
    video = str(clips / "b.mp4")
    assert events == [("videos_found", 1), ("video_started", video), ("chunk_finished", video),
                      ("chunk_finished", video), ("video_finished", video), ("indexing",)]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(summary["flow_run_id"]))
        flow = client.read_flow(run.flow_id)
    assert flow.name == "reprocess-archive" and run.state.is_completed()
    assert run.parameters["settings"]["sample_fps"] == 2.0


def test_a_run_that_cannot_start_raises_the_library_error(prefect_server, clips, flow_settings, tmp_path):
    from faceid_jobs.errors import ModelError
    from faceid_jobs.flows.runner import run_reprocess

    settings = flow_settings.replace(store=str(tmp_path / "store"), weights_dir=str(tmp_path / "none"))
    with pytest.raises(ModelError) as exc:
        run_reprocess([str(clips)], settings)
    assert "\n" not in str(exc.value)


def test_runs_on_the_embedded_server_without_prefect_api_url(clips, flow_settings, tmp_path):
    home = tmp_path / "prefect-home"
    settings = flow_settings.replace(store=str(tmp_path / "store"))
    # Like the CLI: its own logging set up first, at WARNING.
    script = textwrap.dedent(f"""
        import json, logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from faceid_jobs.config import Settings
        from faceid_jobs.flows.runner import run_reprocess
        fields = json.loads({json.dumps(json.dumps(_fields(settings)))})
        settings = Settings(**{{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}})
        print(json.dumps(run_reprocess([{str(clips / 'a.mp4')!r}], settings)))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FACEID_JOBS_"))}
    env["PREFECT_HOME"] = str(home)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert UUID(summary["flow_run_id"]) and summary["chunks"]["done"] == 2
    # Prefect's console shows warnings and errors only, and its database went to PREFECT_HOME.
    assert "INFO" not in result.stderr and "temporary server" not in result.stderr
    assert (home / "prefect.db").is_file()


def _fields(settings) -> dict:
    import dataclasses

    return {f.name: list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(settings) for v in [getattr(settings, f.name)]}
