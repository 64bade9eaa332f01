"""`reprocess-archive`: the library's orchestration loop with its steps as Prefect tasks.

`faceid_jobs.pipeline.process.run_archive` is the loop; here each step of
`faceid_jobs.pipeline.steps` becomes a task (`discover-videos`, `model-ids`,
`plan-video`, `process-chunk` tagged ``gpu`` so a concurrency limit on the tag
caps chunks at once, `finish-video`, `merge-index`, `label-faces`, `discover-people`), retried by
Prefect after transient errors, and the run publishes its summary and report,
and the top people (`flows/people.py`), as artifacts. The tasks wrap the library's module-level functions, so a Dask
task runner pickles them by reference and its workers import them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed

from faceid_jobs.errors import FaceIdError
from faceid_jobs.flows.artifacts import publish_reprocess
from faceid_jobs.flows.common import (
    backoff_delays,
    default_task_runner,
    fit_threads,
    resolve_settings,
    retry_if_transient,
    run_logger,
)
from faceid_jobs.flows.people import publish_top_people
from faceid_jobs.pipeline import cancel as cancellation
from faceid_jobs.pipeline import steps
from faceid_jobs.pipeline.process import run_archive

__all__ = ["GPU_TAG", "PrefectEngine", "reprocess_archive"]

GPU_TAG = "gpu"


def _chunk_run_name() -> str:
    from prefect.runtime import task_run

    job = task_run.parameters["job"]
    return f"chunk-{job.chunk.index}-{Path(job.video_uri).name}"


def _video_run_name() -> str:
    from prefect.runtime import task_run

    params = task_run.parameters
    uri = params["uri"] if "uri" in params else params["plan"].uri
    return f"{task_run.task_name}-{Path(uri).name}"


_TASKS = {
    steps.discover: task(steps.discover, name="discover-videos"),
    steps.model_ids: task(steps.model_ids, name="model-ids"),
    steps.check_sources: task(steps.check_sources, name="check-sources"),
    steps.plan: task(steps.plan, name="plan-video", task_run_name=_video_run_name),
    steps.process_chunk: task(steps.process_chunk, name="process-chunk", tags=[GPU_TAG],
                              task_run_name=_chunk_run_name),
    steps.finish: task(steps.finish, name="finish-video", task_run_name=_video_run_name),
    steps.note_copies: task(steps.note_copies, name="note-copies"),
    steps.merge: task(steps.merge, name="merge-index"),
    steps.label: task(steps.label, name="label-faces"),
    steps.discover_people: task(steps.discover_people, name="discover-people"),
}


class PrefectEngine:
    """Submits each step as its Prefect task on the running flow's task runner."""

    name = "prefect"
    concurrency = 0  # threads were fitted by the flow before the loop starts

    def __init__(self, retries: int, retry_delay_seconds: float) -> None:
        options = {"cache_policy": NO_CACHE, "retry_condition_fn": retry_if_transient, "retries": retries,
                   "retry_delay_seconds": backoff_delays(retry_delay_seconds, retries),
                   "retry_jitter_factor": 0.2 if retry_delay_seconds else None}
        self._tasks = {step: t.with_options(**options) for step, t in _TASKS.items()}

    def submit(self, step: Any, *args: Any) -> Any:
        return self._tasks[step].submit(*args)

    def close(self) -> None:
        """Nothing to release: the flow owns its task runner."""


@flow(name="reprocess-archive", task_runner=default_task_runner())
def reprocess_archive(
    sources: list[str],
    store: str | None = None,
    config: str | None = None,
    settings: dict[str, Any] | None = None,
    build_index: bool = True,
    verify: bool = False,
    retries: int = 3,
    retry_delay_seconds: float = 10.0,
    observer: Any = None,
) -> dict[str, Any]:
    """Find, score and embed every face in the sources' videos; store them; update the index.

    Args:
        sources: video files, folders (recursive) or glob patterns, as seen by the workers.
        store, config, settings: where the settings come from (`flows.common.resolve_settings`);
            overrides e.g. ``{"sample_fps": 2}``.
        build_index: merge new records into the index afterwards (publishes
            nothing when nothing changed).
        verify: read and fingerprint every video again, even those the
            sources index says are unchanged.
        retries: retries of a task after a transient error (I/O, memory).
        retry_delay_seconds: first retry delay; doubles with each retry.
        observer: progress hooks (`ProcessObserver`) of a caller in this
            process, e.g. the CLI's progress bars; not a deployment parameter.

    Returns:
        `ProcessSummary.to_json()`; the run is Failed (with this summary as
        its data) when any source, video or chunk failed (with the setting
        ``fail_on_bad_files`` false, unreadable videos alone do not fail it),
        Cancelled (with the summary, ``interrupted``) when a caller in this
        process stopped it (`pipeline/cancel.py`: the CLI on SIGINT/SIGTERM).
    """
    cfg = fit_threads(resolve_settings(config, settings, store))
    # A caller in this process that stops on SIGINT/SIGTERM (the CLI) keeps SIGTERM through the run.
    with cancellation.keep_sigterm():
        summary = run_archive(sources, cfg, PrefectEngine(retries, retry_delay_seconds), build=build_index,
                              verify=verify, observer=observer,
                              log=run_logger())
    summary.orchestrator, summary.flow_run_id = "prefect", str(flow_run.id)
    result = summary.to_json()
    publish_reprocess(result, [dataclasses.asdict(row) for row in summary.rows])
    if summary.interrupted:  # stopped on request: what was stored stays, a re-run resumes
        return Cancelled(message=f"interrupted: {summary.chunks_done} chunks done, re-run to resume", data=result)
    if cfg.people_discover:
        try:
            publish_top_people(cfg)
        except FaceIdError as exc:  # the summary stands; the people step's own failure is in it already
            run_logger().warning("people summary not published: %s", exc)
    if not summary.ok:  # with fail_on_bad_files false, unreadable videos alone do not fail the run
        return Failed(message=summary.failure_message(), data=result)
    return result
