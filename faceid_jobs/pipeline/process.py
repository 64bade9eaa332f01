"""The one orchestration loop of `process`: sources → plans → chunks → catalog → index → labels → people.

`run_archive` submits the steps (`faceid_jobs.pipeline.steps`) to an engine
and settles their futures; the engine decides where they run: a thread pool
in this process (`faceid-jobs process` with no Prefect server configured),
Dask workers, or Prefect tasks (the `reprocess-archive` flow passes its own
engine and calls this same function). A failing video or chunk is recorded
and the rest go on; the summary is built by a `SummaryCollector`, so every
mode reports the same numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faceid_jobs.config import Settings
from faceid_jobs.errors import (
    ConfigError,
    IntegrityError,
    ModelError,
    RunCancelled,
    StoreUnwritableError,
    VideoError,
)
from faceid_jobs.pipeline import cancel as cancellation
from faceid_jobs.pipeline import steps
from faceid_jobs.pipeline.engines import (
    DEFAULT_RETRY,
    Engine,
    RetryPolicy,
    ThreadEngine,
    cancel_engine,
    make_engine,
    settle,
)
from faceid_jobs.pipeline.summary import Failure, ProcessSummary, SummaryCollector, describe_failure

if TYPE_CHECKING:
    from faceid_jobs.models import ModelSet
    from faceid_jobs.pipeline.chunk import ChunkResult
    from faceid_jobs.pipeline.plan import VideoPlan
    from faceid_jobs.workspace import Workspace

__all__ = ["DEFAULT_RUN", "ProcessObserver", "RunOptions", "process_sources", "run_archive", "run_local"]

_log = logging.getLogger(__name__)


class ProcessObserver:
    """Progress hooks of a run, called from the orchestrating thread in video order;
    the default does nothing."""

    def __reduce__(self) -> tuple[type[ProcessObserver], tuple[()]]:
        # Hooks belong to the process that shows them (a terminal's progress bars hold locks).
        # A Dask task runner ships the flow run's parameters, this one included, with every
        # task: elsewhere it is a do-nothing observer.
        return ProcessObserver, ()

    def videos_found(self, count: int) -> None: ...

    def video_started(self, plan: VideoPlan) -> None: ...

    def chunk_finished(self, plan: VideoPlan, frames: int, result: ChunkResult | None) -> None: ...

    def video_finished(self, uri: str) -> None: ...

    def failure(self, failure: Failure) -> None: ...

    def indexing(self) -> None: ...


def run_archive(
    sources: Sequence[str],
    settings: Settings,
    engine: Engine,
    *,
    build: bool = True,
    verify: bool = False,
    observer: ProcessObserver | None = None,
    log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    cancel: threading.Event | None = None,
) -> ProcessSummary:
    """Process every video in `sources` on `engine`, then update the index, labels and people.

    Args:
        sources: files, folders (recursive) or glob patterns.
        settings: every setting of the run (threads already fitted to the engine).
        engine: where the steps run.
        build: merge new records into the index afterwards (publishes nothing
            when nothing changed).
        verify: read and fingerprint every video again, even those the
            sources index says are unchanged and complete.
        observer: progress hooks.
        log: where the run logs (the Prefect run logger in a flow).
        cancel: set (from a signal handler) to stop the run: steps not started
            are dropped, running chunks stop between frames, nothing more is
            submitted, and the summary comes back `interrupted` with the
            chunks stored so far (a re-run skips them).

    Returns:
        The summary; `summary.failures` lists every source, video or chunk
        that could not be processed (the rest were).

    Raises:
        FaceIdError: the run could not start (no sources, store unwritable,
            missing key or models).
        IntegrityError: the index or labels could not be updated because stored
            data failed an integrity check (the chunks' records are kept).
        StoreUnwritableError: the store cannot be written (disk full, quota,
            read-only, permission): the run stops at the first such write,
            with what it stored so far kept (a re-run resumes).
    """
    # A run logger (Prefect's) shows failures in the run's log at WARNING; in this
    # process the caller reports them once, from the summary, so they log at INFO.
    failure_level = logging.INFO if log is None else logging.WARNING
    log = log or _log
    obs = observer or ProcessObserver()
    started = time.perf_counter()
    collect = SummaryCollector(engine.name, settings.fail_on_bad_files)

    def fail(failure: Failure, video: str | None = None) -> None:
        collect.add_failure(failure, video=video)
        log.log(failure_level, "%s", failure.error)
        obs.failure(failure)

    wanted = [s for s in sources if s and s.strip()]
    if not wanted:
        raise ConfigError("process: no sources given")
    # Chunks whose future is not settled yet: on a stop, those that finished still count.
    unsettled: dict[int, tuple[Any, Any]] = {}
    with cancellation.watching(cancel), _Watcher(cancel, engine):
        try:
            _run(wanted, settings, engine, collect, fail, obs, log, unsettled, build=build, verify=verify)
        except (RunCancelled, CancelledError):
            for job, future in unsettled.values():
                result, _ = settle(future)
                if result is not None:
                    collect.add_chunk(job, result)
            collect.interrupt()
            log.info("run interrupted: %d chunks done", collect.chunks_done)
            # The signal handler's second signal exits at once; a run that stopped is done.
            return collect.build(time.perf_counter() - started)

    summary = collect.build(time.perf_counter() - started)
    log.info("videos %d (%d unchanged), chunks done %d / skipped %d / failed %d, faces %d, %.2f video s per s",
             summary.videos, summary.videos_unchanged, summary.chunks_done, summary.chunks_skipped,
             summary.chunks_failed, summary.faces, summary.speed)
    return summary


def _run(wanted: list[str], settings: Settings, engine: Engine, collect: SummaryCollector, fail: Any,
         obs: ProcessObserver, log: Any, unsettled: dict[int, tuple[Any, Any]], *, build: bool,
         verify: bool) -> None:
    """The steps of `run_archive`, in order; raises `RunCancelled` as soon as the run is asked to stop."""

    def halt(exc: BaseException | None = None) -> None:
        # `cancellation.cancelled()`: also a stop registered by the caller (a flow's CLI run).
        if cancellation.cancelled() or isinstance(exc, RunCancelled | CancelledError):
            raise RunCancelled("run cancelled")

    found = _needed(engine.submit(steps.discover, wanted, settings))
    halt()
    for source, reason in found.problems:
        fail(Failure(source, None, f"{source}: {reason}"))
    collect.add_skipped(found.skipped)
    obs.videos_found(len(found.videos))
    ids = _needed(engine.submit(steps.model_ids, settings))
    embedder = ids["embedder"]
    analysis_id = settings.analysis_fingerprint(ids)
    log.info("%d videos, analysis %s, store %s", len(found.videos), analysis_id, settings.store)

    # Videos whose listing matches the sources index and whose analysis is
    # complete are not read at all (one listing of the index, one catalog
    # read each); --verify reads and fingerprints every video again.
    unchanged = {} if verify or not found.sources else dict(
        _needed(engine.submit(steps.check_sources, found.sources, settings, analysis_id)))
    listed = dict(zip(found.videos, found.sources, strict=True)) if found.sources else {}
    # A video's chunks are submitted as soon as it is planned, so workers never
    # wait for the collecting loop below.
    planned = {uri: engine.submit(steps.plan, uri, settings, analysis_id, listed.get(uri))
               for uri in found.videos if uri not in unchanged}
    chunk_settings = _fit_chunk_threads(settings, engine, planned)
    halt()
    # Content seen under two names (a renamed copy) is analysed and counted once, under the
    # first name met (unchanged videos first, then in the run's order); the others are noted as its copies.
    first: dict[str, str] = {}
    for uri, entry in unchanged.items():
        first.setdefault(entry.fingerprint, uri)
    plans: dict[str, tuple[VideoPlan | None, BaseException | None]] = {}
    chunks: dict[str, list[Any]] = {}
    copies: dict[str, VideoPlan] = {}
    for uri, future in planned.items():
        plan, exc = plans[uri] = settle(future)
        if plan is not None and first.setdefault(plan.fingerprint, uri) != uri:
            copies[uri] = plan
        elif plan is not None:
            halt()
            chunks[uri] = [engine.submit(steps.process_chunk, job, chunk_settings) for job in plan.jobs]
            unsettled.update({id(f): (job, f) for job, f in zip(plan.jobs, chunks[uri], strict=True)})

    # Results are collected video by video (progress follows this order); a
    # video is catalogued once all of its chunks were attempted.
    finishing = {}
    for uri, entry in unchanged.items():
        if first[entry.fingerprint] == uri:
            collect.add_unchanged(uri, entry)
        else:
            collect.add_copy(uri, first[entry.fingerprint], unread=True)
        obs.video_finished(uri)
    for uri, (plan, exc) in plans.items():
        collect.row(uri)
        if plan is None:
            fail(Failure(uri, None, describe_failure(exc, uri), isinstance(exc, VideoError)), video=uri)
            obs.video_finished(uri)
            continue
        if uri in copies:
            collect.add_copy(uri, first[plan.fingerprint])
            obs.video_finished(uri)
            continue
        obs.video_started(plan)
        collect.add_video(plan)
        failed: list[int] = []
        for job, future in zip(plan.jobs, chunks[uri], strict=True):
            result, exc = settle(future)
            unsettled.pop(id(future), None)
            if result is not None:
                collect.add_chunk(job, result)
            halt(exc)
            if isinstance(exc, ModelError | StoreUnwritableError):
                # The models or the store (full disk, quota, read-only, permission), not this video:
                # every chunk would fail the same way, so the run stops at the first (exit 5 or 1).
                raise exc
            if result is None:
                failed.append(job.chunk.index)
                fail(Failure(uri, job.chunk.index, describe_failure(exc, uri, job.chunk.index),
                             isinstance(exc, VideoError)), video=uri)
            obs.chunk_finished(plan, job.chunk.frames, result)
        halt()
        finishing[uri] = engine.submit(steps.finish, plan, settings, embedder, failed)
        obs.video_finished(uri)

    for uri, future in finishing.items():
        catalogued, exc = settle(future)
        if isinstance(exc, StoreUnwritableError):
            raise exc
        if catalogued is None:
            fail(Failure(uri, None, describe_failure(exc, uri)), video=uri)
        else:
            collect.add_catalogued(uri, *catalogued)
    if copies:
        _, exc = settle(engine.submit(steps.note_copies, list(copies.values()), settings, analysis_id))
        if exc is not None:
            fail(Failure(settings.store, None, "noting copies failed: " + describe_failure(exc, settings.store)))

    halt()
    if build:
        obs.indexing()
        merged, exc = settle(engine.submit(steps.merge, settings, embedder))
        if isinstance(exc, IntegrityError | StoreUnwritableError):
            raise exc  # a tampered, damaged or full store is not "some chunks failed": exit 4 or 1 at once
        if merged is not None:
            collect.set_index(merged)
        else:
            fail(Failure(settings.store, None, "index merge failed: " + describe_failure(exc, settings.store)))

    halt()
    labelled, exc = settle(engine.submit(steps.label, settings, embedder))
    if isinstance(exc, IntegrityError):
        raise exc
    if exc is not None:
        fail(Failure(settings.store, None, "labelling faces failed: " + describe_failure(exc, settings.store)))
    elif labelled is not None and labelled.files:
        log.info("labelled %d record files with gallery version %d", labelled.files, labelled.gallery_version)

    halt()
    people, exc = settle(engine.submit(steps.discover_people, settings, embedder))
    if exc is not None:
        fail(Failure(settings.store, None, "people discovery failed: " + describe_failure(exc, settings.store)))
    elif people is not None:
        log.info("people version %d: %d people from %d new tracks", people.version, people.people, people.new_nodes)


def _needed(future: Any) -> Any:
    """The value of a step the run cannot go on without; its error (bad sources, models, store,
    a lost cluster: one line each) ends the run."""
    value, exc = settle(future)
    if exc is not None:
        raise exc
    return value


class _Watcher:
    """While the block runs, cancels the engine's queued steps as soon as `cancel` is set.

    The orchestrating thread may be waiting on a step that has not started
    (behind others in the queue): dropping the queue from here lets it see
    the stop at once.
    """

    def __init__(self, cancel: threading.Event | None, engine: Engine) -> None:
        self._cancel = cancel
        self._engine = engine
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Watcher:
        if self._cancel is not None:
            self._thread = threading.Thread(target=self._watch, name="faceid-cancel", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        assert self._cancel is not None
        while not self._done.wait(0.1):
            if self._cancel.is_set():
                cancel_engine(self._engine)
                return


def _fit_chunk_threads(settings: Settings, engine: Engine, planned: dict[str, Any]) -> Settings:
    """The settings chunks run with: the cores shared by as many chunks as will run at once.

    With fewer videos than the engine runs steps at once, their plans are
    awaited to count the chunks: one short video (one chunk) then gets every
    core for its models instead of cores ÷ workers. An engine that does not
    know its concurrency (a remote cluster, Prefect) keeps the settings.
    """
    if not engine.concurrency:
        return settings
    concurrency = engine.concurrency
    if len(planned) < concurrency:
        jobs = sum(len(plan.jobs) for plan, _ in map(settle, planned.values()) if plan is not None)
        concurrency = min(concurrency, max(jobs, 1))
    return steps.fit_threads(settings, concurrency)


@dataclass(frozen=True)
class RunOptions:
    """What a `process` run does beyond its settings, the same whichever driver runs it
    (`run_local` here, `faceid_jobs.flows.runner.run_reprocess` as a Prefect flow).

    Attributes:
        build: merge new records into the index afterwards (no version is
            published when nothing changed).
        verify: read and fingerprint every video again, also those the sources
            index says are unchanged.
        dask_address: run the chunk tasks on this Dask scheduler (``tcp://host:8786``).
        dask_local: > 0: start a local Dask cluster of this many worker processes.
    """

    build: bool = True
    verify: bool = False
    dask_address: str | None = None
    dask_local: int = 0


DEFAULT_RUN = RunOptions()


def run_local(
    sources: Sequence[str],
    settings: Settings,
    options: RunOptions = RunOptions(),
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    observer: ProcessObserver | None = None,
    cancel: threading.Event | None = None,
) -> ProcessSummary:
    """Run `process` in this process with no orchestration server: a thread pool of
    `settings.workers` (0 = one per core), or Dask when `options` ask for it.

    Raises:
        FaceIdError: as `run_archive`; an unreachable Dask scheduler is a `ConfigError`.
    """
    if settings.workers < 0:
        raise ConfigError(f"workers must be >= 0, got {settings.workers}")
    engine = make_engine(workers=settings.workers or steps.cores(), dask_address=options.dask_address,
                         dask_local=options.dask_local, retry=retry, no_workers_s=settings.dask_no_workers_s)
    try:
        return run_archive(sources, settings, engine,
                           build=options.build, verify=options.verify, observer=observer, cancel=cancel)
    finally:
        engine.close()


def process_sources(
    sources: list[str],
    settings: Settings,
    ws: Workspace,
    models: ModelSet,
    *,
    build: bool = True,
    observer: ProcessObserver | None = None,
) -> ProcessSummary:
    """Process `sources` one chunk at a time on an open workspace and a loaded model set
    (for callers that hold both: tests, the bench, the API)."""
    engine = ThreadEngine(1, RetryPolicy(retries=0), ws=ws, models=models)
    try:
        return run_archive(sources, settings, engine, build=build, observer=observer)
    finally:
        engine.close()
