"""`reprocess-archive`: footage → chunk tasks → catalog → index, as a Prefect flow.

The same steps as the local driver (`faceid_jobs.pipeline.process`), with the
loop replaced by tasks: `plan-video` per video, `process-chunk` per chunk
(tagged ``gpu``: a Prefect concurrency limit on that tag caps how many run at
once), `finish-video` per video once all its chunks were attempted, then
`merge-index`, and `label-faces` (`faceid_jobs.flows.relabel`) when a gallery
exists: the new record files get identity labels.

Chunks whose records exist are skipped by `run_chunk`, so a re-run (or a run
resumed after a kill) does no model work for them; a catalog entry is only
rewritten when it changes, and the incremental merge publishes no index
version when no record file or catalog entry changed. The run ends Failed if
any video or chunk failed, after all the others finished, with the summary
naming them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed

from faceid_jobs.config import Settings
from faceid_jobs.errors import ConfigError
from faceid_jobs.flows.artifacts import publish_reprocess
from faceid_jobs.flows.common import (
    backoff_delays,
    default_task_runner,
    describe_failure,
    fit_threads,
    models_for,
    resolve_settings,
    retry_if_transient,
    video_file,
    workspace_for,
)
from faceid_jobs.flows.index import merge_index_task
from faceid_jobs.flows.relabel import label_faces_task

if TYPE_CHECKING:
    from faceid_jobs.pipeline.chunk import ChunkJob, ChunkResult
    from faceid_jobs.pipeline.plan import VideoPlan
    from faceid_jobs.pipeline.process import ProcessSummary

__all__ = [
    "discover_task",
    "finish_video_task",
    "load_models_task",
    "observing",
    "plan_video_task",
    "process_chunk",
    "reprocess_archive",
]

GPU_TAG = "gpu"

# Progress hooks (a `ProcessObserver`) for runs of this process, set by `observing`.
_OBSERVER: Any = None


@contextlib.contextmanager
def observing(observer: Any) -> Iterator[None]:
    """Send the progress of `reprocess-archive` runs started in this process to `observer`.

    The hooks of `faceid_jobs.pipeline.process.ProcessObserver` are called from
    the flow function (in this process, whatever the task runner), in video
    order: videos_found, video_started, chunk_finished, video_finished,
    failure, indexing.
    """
    global _OBSERVER
    previous, _OBSERVER = _OBSERVER, observer
    try:
        yield
    finally:
        _OBSERVER = previous


def _chunk_run_name() -> str:
    from prefect.runtime import task_run

    job = task_run.parameters["job"]
    return f"chunk-{job.chunk.index}-{Path(job.video_uri).name}"


def _video_run_name() -> str:
    from prefect.runtime import task_run

    params = task_run.parameters
    uri = params["uri"] if "uri" in params else params["plan"].uri
    return f"{task_run.task_name}-{Path(uri).name}"


@task(name="discover-videos", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=backoff_delays(2, 2),
      retry_condition_fn=retry_if_transient)
def discover_task(sources: list[str], settings: Settings) -> tuple[list[str], list[tuple[str, str]],
                                                                   str | None]:
    """Open the store with its keys (creating the key file on first use) and check it is
    writable, then expand the sources into video URIs; (videos, problems, created key file)."""
    from faceid_jobs.pipeline.sources import discover_videos

    ws = workspace_for(settings, create_key=True)
    ws.store.check()
    videos, problems = discover_videos(sources)
    return videos, problems, ws.created_key


@task(name="load-models", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=retry_if_transient)
def load_models_task(settings: Settings) -> dict[str, str]:
    """Load (or reuse) the model set on a worker; its ids name the analysis."""
    with models_for(settings) as models:
        return dict(models.ids)


@task(name="plan-video", cache_policy=NO_CACHE, task_run_name=_video_run_name,
      retry_condition_fn=retry_if_transient)
def plan_video_task(uri: str, settings: Settings, analysis_id: str) -> VideoPlan:
    from faceid_jobs.pipeline.plan import plan_video
    from faceid_jobs.video import local_path

    with local_path(uri) as path:
        return plan_video(uri, path, settings, analysis_id)


@task(name="process-chunk", tags=[GPU_TAG], cache_policy=NO_CACHE, task_run_name=_chunk_run_name,
      retry_condition_fn=retry_if_transient)
def process_chunk(job: ChunkJob, settings: Settings) -> ChunkResult:
    from faceid_jobs.pipeline.chunk import run_chunk

    with video_file(job.video_uri, job.path) as path, models_for(settings) as models:
        return run_chunk(replace(job, path=str(path)), models, workspace_for(settings), settings)


@task(name="finish-video", cache_policy=NO_CACHE, task_run_name=_video_run_name,
      retry_condition_fn=retry_if_transient)
def finish_video_task(plan: VideoPlan, settings: Settings, embedder_id: str,
                      failed: list[int]) -> tuple[bool, int]:
    """Catalog the video's analysis; (entry changed?, face rows stored for it)."""
    from faceid_jobs.pipeline.process import count_stored_faces, finish_video
    from faceid_jobs.storage import load_entry

    ws = workspace_for(settings)
    before = load_entry(ws.store, plan.fingerprint)
    entry = finish_video(ws.store, plan, embedder_id, failed)
    return entry != before, count_stored_faces(ws, plan)


@flow(name="reprocess-archive", task_runner=default_task_runner())
def reprocess_archive(
    sources: list[str],
    store: str | None = None,
    config: str | None = None,
    settings: dict[str, Any] | None = None,
    build_index: bool = True,
    retries: int = 3,
    retry_delay_seconds: float = 10.0,
) -> dict[str, Any]:
    """Find, score and embed every face in the sources' videos; store them; update the index.

    Args:
        sources: video files, folders (recursive) or glob patterns, as seen by the workers.
        store: store folder or ``s3://bucket/prefix``; default from `config`, the
            environment, then ``./faceid-data``.
        config: TOML profile on the machine running the flow.
        settings: setting overrides (names as in `Settings`, e.g. ``{"sample_fps": 2}``).
        build_index: merge new records into the index afterwards (publishes
            nothing when nothing changed).
        retries: retries of a plan/chunk/finish task after a transient error (I/O, memory).
        retry_delay_seconds: first retry delay; doubles with each retry.

    Returns:
        `ProcessSummary.to_json()` plus ``flow_run_id``; the run is Failed (with
        this summary as its data) when any video or chunk failed.
    """
    from faceid_jobs.pipeline.process import Failure, ProcessObserver, ProcessSummary

    started = time.perf_counter()
    log = get_run_logger()
    obs = _OBSERVER or ProcessObserver()
    cfg = fit_threads(resolve_settings(config, settings, store))
    wanted = [s for s in sources if s and s.strip()]
    if not wanted:
        raise ConfigError("reprocess-archive: no sources given")
    retry = {"retries": retries, "retry_delay_seconds": backoff_delays(retry_delay_seconds, retries),
             "retry_jitter_factor": 0.2 if retry_delay_seconds else None}
    plan_task = plan_video_task.with_options(**retry)
    chunk_task = process_chunk.with_options(**retry)
    finish_task = finish_video_task.with_options(**retry)

    summary = ProcessSummary()
    videos, problems, created_key = discover_task(wanted, cfg)
    if created_key:
        log.warning("created encryption key file %s (mode 0600): back it up, without it the index "
                    "cannot be read", created_key)
    for source, reason in problems:
        _fail(summary, obs, None, Failure(source, None, f"{source}: {reason}"))
    obs.videos_found(len(videos))
    ids = load_models_task.submit(cfg).result()
    analysis_id = cfg.analysis_fingerprint(ids)
    log.info("%d videos, analysis %s, store %s", len(videos), analysis_id, cfg.store)

    # Every video's chunks are submitted as soon as it is planned, so the
    # workers never wait for the collecting loop below.
    planned = {uri: plan_task.submit(uri, cfg, analysis_id) for uri in videos}
    plans: dict[str, VideoPlan] = {}
    chunk_futures: dict[str, list[Any]] = {}
    for uri, future in planned.items():
        future.wait()
        if future.state.is_completed():
            plans[uri] = future.result()
            chunk_futures[uri] = [chunk_task.submit(job, cfg) for job in plans[uri].jobs]

    # Results are collected video by video (progress follows this order); a
    # video is catalogued once all of its chunks were attempted.
    rows: dict[str, dict[str, Any]] = {}
    finishing = {}
    for uri, future in planned.items():
        summary.videos += 1
        row = rows[uri] = _video_row(uri)
        plan = plans.get(uri)
        if plan is None:
            _fail(summary, obs, row, Failure(uri, None, describe_failure(_exception(future), uri)))
            obs.video_finished(uri)
            continue
        obs.video_started(plan)
        summary.video_seconds += plan.info.duration_s
        row.update(chunks=len(plan.jobs), video_seconds=round(plan.info.duration_s, 3))
        failed: list[int] = []
        for job, chunk_future in zip(plan.jobs, chunk_futures[uri], strict=True):
            chunk_future.wait()
            result = chunk_future.result() if chunk_future.state.is_completed() else None
            if result is not None:
                summary.add(result, job.chunk.frames / job.fps)
                row["done" if result.status == "done" else "skipped"] += 1
                row["faces"] += result.faces
            else:
                failed.append(job.chunk.index)
                summary.chunks_failed += 1
                row["failed"] += 1
                _fail(summary, obs, row, Failure(
                    uri, job.chunk.index, describe_failure(_exception(chunk_future), uri, job.chunk.index)))
            obs.chunk_finished(plan, job.chunk.frames, result)
        finishing[uri] = finish_task.submit(plan, cfg, ids["embedder"], failed)
        obs.video_finished(uri)

    for uri, future in finishing.items():
        future.wait()
        if not future.state.is_completed():
            _fail(summary, obs, rows[uri], Failure(uri, None, describe_failure(_exception(future), uri)))
            continue
        changed, faces_in_store = future.result()
        summary.faces_in_store += faces_in_store
        rows[uri]["faces_in_store"] = faces_in_store
        rows[uri]["catalog"] = "updated" if changed else "unchanged"

    if build_index:
        obs.indexing()
        # The merge is incremental: with no new record file and no changed
        # catalog entry it publishes nothing, so a re-run leaves the index as is.
        future = merge_index_task.submit(cfg, ids["embedder"])
        future.wait()
        if future.state.is_completed():
            summary.index = future.result()
            summary.indexed_vectors = summary.index.vectors
        else:
            _fail(summary, obs, None, Failure(cfg.store, None, "index merge failed: " + describe_failure(
                _exception(future), cfg.store)))

    if _has_gallery(cfg):
        # Only record files not yet labelled for the current gallery version are read.
        future = label_faces_task.submit(cfg, ids["embedder"])
        future.wait()
        if future.state.is_completed():
            labels = future.result()
            log.info("labelled %d record files with gallery version %d", labels.files, labels.gallery_version)
        else:
            _fail(summary, obs, None, Failure(cfg.store, None, "labelling faces failed: " + describe_failure(
                _exception(future), cfg.store)))

    summary.wall_seconds = time.perf_counter() - started
    result = summary.to_json() | {"flow_run_id": str(flow_run.id)}
    publish_reprocess(result, list(rows.values()))
    log.info("videos %d, chunks done %d / skipped %d / failed %d, faces %d, %.2f video s per s",
             summary.videos, summary.chunks_done, summary.chunks_skipped, summary.chunks_failed,
             summary.faces, summary.speed)
    if summary.failures:
        return Failed(message=_failure_message(summary), data=result)
    return result


def _has_gallery(settings: Settings) -> bool:
    from faceid_jobs.identity.gallery import list_gallery_versions
    from faceid_jobs.storage import open_store

    return bool(list_gallery_versions(open_store(settings.store)))


def _exception(future: Any) -> BaseException | None:
    value = future.state.result(raise_on_failure=False)
    return value if isinstance(value, BaseException) else None


def _video_row(uri: str) -> dict[str, Any]:
    return {"video": uri, "chunks": 0, "done": 0, "skipped": 0, "failed": 0, "faces": 0,
            "faces_in_store": 0, "video_seconds": 0.0, "catalog": "-", "status": "ok", "error": ""}


def _fail(summary: ProcessSummary, obs: Any, row: dict[str, Any] | None, failure: Any) -> None:
    summary.failures.append(failure)
    if row is not None:
        row["status"] = "failed"
        row["error"] = row["error"] or failure.error
    obs.failure(failure)


def _failure_message(summary: ProcessSummary) -> str:
    videos = sorted({f.video for f in summary.failures if f.chunk is None})
    chunks = [f"{Path(f.video).name}#{f.chunk}" for f in summary.failures if f.chunk is not None]
    parts = []
    if chunks:
        parts.append(f"{len(chunks)} chunk(s) failed ({', '.join(chunks[:10])}"
                     f"{', …' if len(chunks) > 10 else ''})")
    if videos:
        names = ", ".join(Path(v).name for v in videos[:10])
        parts.append(f"{len(videos)} video(s)/source(s) failed ({names}"
                     f"{', …' if len(videos) > 10 else ''})")
    return "; ".join(parts) + f"; first: {summary.failures[0].error}"
