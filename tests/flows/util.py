"""Helpers of the flow tests: run a flow for real, read what the Prefect server recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from uuid import UUID


def run_reprocess_flow(sources, settings, store, flow=None, **params) -> tuple[Any, dict[str, Any]]:
    """Run `reprocess-archive` on the test server; (final state, summary)."""
    from faceid_jobs.flows.common import settings_overrides
    from faceid_jobs.flows.reprocess import reprocess_archive

    params.setdefault("retry_delay_seconds", 0)
    state = (flow or reprocess_archive)(
        sources=[str(s) for s in sources], store=str(store), settings=settings_overrides(settings),
        return_state=True, **params,
    )
    return state, state.result(raise_on_failure=False)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def task_runs(flow_run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])), limit=200)


def artifacts(flow_run_id: str) -> dict[str, Any]:
    """Artifact key → artifact of one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])),
            limit=50)
    return {a.key: a for a in found}


def table_rows(artifact) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def markdown_json(markdown: str) -> dict[str, Any]:
    """The JSON block of a Markdown report."""
    start = markdown.index("```json\n") + len("```json\n")
    return json.loads(markdown[start: markdown.index("\n```", start)])


def face_rows(store: Path, settings):
    """Every stored face row of a store (decrypted with `settings`' key), sorted by face id."""
    import pyarrow as pa

    from faceid_jobs.records.parquet import open_parquet
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(settings.replace(store=str(store)))
    tables = [open_parquet(p.read_bytes(), p.relative_to(store).as_posix(), ws.cipher).read()
              for p in sorted((store / "records").rglob("*.parquet"))]
    return pa.concat_tables(tables).sort_by("face_id")
