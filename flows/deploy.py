"""The deployments of faceid-jobs, built in Python (mirrors `prefect.yaml`).

- ``reprocess-archive/nightly``: the archive every night (cron).
- ``rebuild-index/on-enrollment``: on each ``faceid.enrollment.changed`` event,
  plus a nightly fallback (a merge with nothing new publishes nothing).
- ``relabel/on-enrollment``: on the same event, labels the stored faces with
  the new gallery (`faceid_jobs.flows.relabel`), plus the same nightly fallback
  (files already labelled for the current gallery are skipped).
- ``people-discovery/weekly-rebuild``: re-clusters every stored face into
  people (ids, names, merges and ignores kept; `faceid_jobs.flows.people`),
  weekly; nightly reprocess runs only add new tracks to the people.

`deploy_all` registers them on the Prefect server named by `PREFECT_API_URL`
(for workers of a work pool); `serve_all` runs them in this process with
`prefect.serve`. Entrypoints are module paths (``faceid_jobs.flows.…``), so
any machine with faceid-jobs installed (a process worker, a Docker image)
can run them without pulling code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faceid_jobs.errors import ConfigError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = [
    "ENROLLMENT_EVENT",
    "GPU_TAG",
    "DeploySpec",
    "build_deployments",
    "deploy_all",
    "serve_all",
]

ENROLLMENT_EVENT = "faceid.enrollment.changed"
GPU_TAG = "gpu"
REPROCESS_NAME = "nightly"
INDEX_NAME = "on-enrollment"
RELABEL_NAME = "on-enrollment"
PEOPLE_NAME = "weekly-rebuild"
# The nightly reprocess runs unattended over whatever lands in the archive: an
# unreadable video is listed in the summary's bad_files, not a failed run
# (a spec's own settings override this).
NIGHTLY_SETTINGS: dict[str, Any] = {"fail_on_bad_files": False}


@dataclass(frozen=True)
class DeploySpec:
    """What the deployments run on and when."""

    sources: tuple[str, ...]
    store: str | None = None
    config: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    reprocess_cron: str = "0 2 * * *"
    index_cron: str = "30 5 * * *"
    people_cron: str = "0 4 * * 0"
    timezone: str = "UTC"
    tags: tuple[str, ...] = ("faceid",)
    # Run the flows' tasks on this Dask scheduler, or on a local cluster of this many
    # worker processes per flow run (set as the deployments' job variables).
    dask_address: str | None = None
    dask_local: int = 0


def build_deployments(spec: DeploySpec) -> list[RunnerDeployment]:
    """The four deployments as `RunnerDeployment`s (not yet registered)."""
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from faceid_jobs.flows.common import dask_job_variables
    from faceid_jobs.flows.index import rebuild_index
    from faceid_jobs.flows.people import people_discovery
    from faceid_jobs.flows.relabel import relabel
    from faceid_jobs.flows.reprocess import reprocess_archive

    sources = [s for s in spec.sources if s]
    if not sources:
        raise ConfigError("deploy: give at least one source (--source) for the nightly reprocess")
    common = {"store": spec.store or None, "config": spec.config or None, "settings": dict(spec.settings)}
    job_variables = dask_job_variables(spec.dask_address, spec.dask_local)

    def deployment(flow: Any, name: str, cron: str, description: str, **options: Any) -> RunnerDeployment:
        return flow.to_deployment(name=name, schedules=[Cron(cron, timezone=spec.timezone)], description=description,
                                  tags=list(spec.tags), entrypoint_type=EntrypointType.MODULE_PATH,
                                  job_variables=job_variables, **options)

    def on_enrollment(label: str) -> dict[str, Any]:
        # The event trigger, a nightly fallback for missed events, one run at a time.
        return {"triggers": [DeploymentEventTrigger(name=label, expect={ENROLLMENT_EVENT})],
                "parameters": common, "concurrency_limit": 1}

    reprocess = deployment(
        reprocess_archive, REPROCESS_NAME, spec.reprocess_cron,
        "Reprocess the footage archive: new or changed videos are analysed, the rest skipped.",
        parameters={"sources": sources, **common, "settings": {**NIGHTLY_SETTINGS, **spec.settings}})
    index = deployment(
        rebuild_index, INDEX_NAME, spec.index_cron,
        "Merge new records into the face index when enrollment changes, and nightly.",
        **on_enrollment("enrollment changed"))
    labels = deployment(
        relabel, RELABEL_NAME, spec.index_cron,
        "Label the stored faces with the gallery when enrollment changes (no video decoding), and nightly.",
        **on_enrollment("enrollment changed: relabel"))
    # Incremental discovery joins new tracks to the people as they come; a full
    # rebuild now and then re-checks every earlier decision with all the faces.
    people = deployment(
        people_discovery, PEOPLE_NAME, spec.people_cron,
        "Cluster every stored face into people again (ids, names, merges and ignores kept); weekly.",
        parameters={**common, "rebuild": True}, concurrency_limit=1)
    return [reprocess, index, labels, people]


def deploy_all(
    spec: DeploySpec,
    work_pool: str,
    *,
    create_pool: bool = True,
    gpu_limit: int | None = None,
) -> list[str]:
    """Register the deployments on the configured Prefect server.

    Args:
        spec: sources, store and schedules.
        work_pool: work pool whose workers run the flows.
        create_pool: create a ``process`` pool of that name if none exists
            (Docker, Kubernetes and ECS pools are created with `prefect work-pool create`).
        gpu_limit: set the tag concurrency limit on ``gpu`` (chunk tasks) to this.

    Returns:
        ``flow-name/deployment-name`` of each registered deployment.

    Raises:
        ConfigError: no Prefect server configured (`PREFECT_API_URL`).
    """
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise ConfigError(
            "deploy needs a Prefect server: start one (`prefect server start`) and set PREFECT_API_URL "
            "(e.g. `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`)"
        )
    deployments = build_deployments(spec)
    if create_pool:
        _ensure_process_pool(work_pool)
    if gpu_limit is not None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=gpu_limit)
    names = []
    for deployment in deployments:
        deployment.apply(work_pool_name=work_pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def serve_all(spec: DeploySpec, *, limit: int | None = None) -> None:
    """Run the deployments' schedules and trigger in this process until interrupted."""
    from prefect import serve

    serve(*build_deployments(spec), limit=limit)


def _ensure_process_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            pass
        client.create_work_pool(WorkPoolCreate(
            name=name, type="process",
            base_job_template=ProcessWorker.get_default_base_job_template(),
            description="faceid-jobs flows (created by `faceid-jobs deploy`)",
        ))


def spec_from(sources: Sequence[str], **kwargs: Any) -> DeploySpec:
    """A `DeploySpec`, dropping options left unset (None)."""
    return DeploySpec(sources=tuple(sources), **{k: v for k, v in kwargs.items() if v is not None})
