"""Where the steps of a run execute: threads in this process, or a Dask cluster (I/O).

The orchestration loop (`faceid_jobs.pipeline.process.run_archive`) only
submits step functions (`faceid_jobs.pipeline.steps`) and settles futures;
an `Engine` decides where they run. The Prefect flow supplies its own engine
(`faceid_jobs.flows.engine`), so the loop is the same in every mode.

Transient errors (I/O, memory; `is_transient`) are retried inside the
step with exponential backoff and jitter; anything else, a full disk
included, fails the step at once. A Dask worker that dies mid-chunk has its chunks re-run elsewhere by
the scheduler; steps are idempotent, so a re-run chunk writes the same rows.
A Dask cluster that goes away (its scheduler lost, or no worker left for
`Settings.dask_no_workers_s`) stops the run with a `ClusterLostError`, one
line; only the user's stop (`cancel`) reads as `RunCancelled`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from faceid_jobs.errors import ClusterLostError, ConfigError, FaceIdError, RunCancelled
from faceid_jobs.pipeline.summary import TRANSIENT_ERRORS, is_transient

if TYPE_CHECKING:
    from faceid_jobs.models import ModelSet
    from faceid_jobs.workspace import Workspace

__all__ = ["DEFAULT_RETRY", "DaskEngine", "Engine", "Future", "RetryPolicy", "ThreadEngine", "cancel_engine",
           "make_engine", "settle"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Future(Protocol[T]):
    """What every engine's submit returns (concurrent, Dask and Prefect futures all fit)."""

    def result(self) -> T: ...


class Engine(Protocol):
    """Runs step functions somewhere; see the module docstring."""

    name: str
    concurrency: int  # chunks running at once on this machine's cores; 0 = unknown (remote)

    def submit(self, step: Callable[..., T], *args: Any) -> Future[T]: ...

    def close(self) -> None: ...


def cancel_engine(engine: Engine) -> None:
    """Drop the steps `engine` has not started (an engine without `cancel` runs them out)."""
    cancel = getattr(engine, "cancel", None)
    if cancel is not None:
        cancel()


def settle(future: Future[T]) -> tuple[T | None, BaseException | None]:
    """Wait for `future`; (its value, None) or (None, the exception its step failed with).

    Raises:
        ClusterLostError: the engine itself went away (not a step's failure).
    """
    try:
        return future.result(), None
    except ClusterLostError:
        raise
    except Exception as exc:
        return None, exc


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a step after a transient error: delay, 2·delay, 4·delay, … with ±20 % jitter."""

    retries: int = 3
    delay_seconds: float = 10.0

    def delays(self) -> list[float]:
        return [self.delay_seconds * 2**i for i in range(max(self.retries, 0))]


DEFAULT_RETRY = RetryPolicy()


def run_with_retries(step: Callable[..., T], policy: RetryPolicy, *args: Any, **kwargs: Any) -> T:
    """Call `step`, retrying transient errors per `policy` (module-level: Dask pickles it by name)."""
    delays = policy.delays()
    for attempt in range(len(delays) + 1):
        try:
            return step(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            if attempt == len(delays) or not is_transient(exc):
                raise
            delay = delays[attempt] * random.uniform(0.8, 1.2)
            log.warning("%s: %s: %s; retry %d of %d in %.1f s", step.__name__, type(exc).__name__, exc,
                        attempt + 1, len(delays), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _Refused:
    """A step's `FaceIdError`, returned rather than raised (see `run_reporting`)."""

    error: FaceIdError


def run_reporting(step: Callable[..., T], policy: RetryPolicy, *args: Any) -> T | _Refused:
    """`run_with_retries`, with a refusal of bad input (`FaceIdError`) returned as a value.

    A Dask worker logs every task that raises as "Compute Failed" with a
    traceback; a corrupt video is an expected outcome, reported once by the
    run's summary, so it travels back as a value and `_Unwrapped` raises it.
    """
    try:
        return run_with_retries(step, policy, *args)
    except FaceIdError as exc:
        return _Refused(exc)


class _Unwrapped:
    """A Dask future whose `result()` raises a `_Refused` step's error, and a lost cluster's."""

    def __init__(self, future: Any, engine: DaskEngine) -> None:
        self._future = future
        self._engine = engine

    def result(self) -> Any:
        from distributed import wait

        # Waits a second at a time, so a cluster left without workers is noticed
        # (a remote scheduler's own no-workers-timeout is not ours to set).
        while not self._future.done():
            try:
                wait([self._future], timeout=1.0)
            except TimeoutError:
                self._engine.check_cluster()
        if self._future.cancelled():
            raise self._engine.cancelled_why()
        try:
            value = self._future.result()
        except Exception as exc:
            if type(exc).__name__ == "NoValidWorkerError":  # the local scheduler's no-workers-timeout
                raise self._engine.no_workers() from None
            raise
        if isinstance(value, _Refused):
            raise value.error
        return value


class ThreadEngine:
    """Steps on a thread pool in this process (onnxruntime and OpenCV release the GIL).

    `ws` and `models`, when given, are passed to the steps that take them, so a
    caller holding a workspace and a loaded model set (tests, the bench, the
    API) runs on exactly those.
    """

    name = "local"

    def __init__(self, workers: int, retry: RetryPolicy = DEFAULT_RETRY, *, ws: Workspace | None = None,
                 models: ModelSet | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.concurrency = workers
        self._retry = retry
        self._given = {k: v for k, v in {"ws": ws, "models": models}.items() if v is not None}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faceid-step")

    def submit(self, step: Callable[..., T], *args: Any) -> Future[T]:
        kwargs = {k: v for k, v in self._given.items() if k in _keywords(step)}
        try:
            return self._pool.submit(run_with_retries, step, self._retry, *args, **kwargs)
        except RuntimeError:  # submitted after `cancel` shut the pool down
            refused: ConcurrentFuture[T] = ConcurrentFuture()
            refused.set_exception(RunCancelled("run cancelled"))
            return refused

    def cancel(self) -> None:
        """Drop the steps not started yet; running ones stop at their next `cancel.check()`."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@functools.cache
def _keywords(step: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(step).parameters)


class DaskEngine:
    """Steps on a Dask cluster: an existing scheduler (`address`) or a local cluster of
    `local_workers` processes with one thread each, started for the run.

    `no_workers_s`: how long the cluster may have no worker before the run stops
    (`ClusterLostError`); a local cluster's scheduler also fails its tasks then.
    """

    name = "dask"

    def __init__(self, *, address: str | None = None, local_workers: int = 0,
                 retry: RetryPolicy = DEFAULT_RETRY, no_workers_s: float = 60.0) -> None:
        # Dask logs every scheduler and worker event at INFO, in this process and
        # in its local workers (which inherit the environment): warnings only,
        # unless the user configured Dask's logging.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - declared dependency
            raise ConfigError("Dask runs need dask[distributed] (pip install 'dask[distributed]')") from None
        self._retry = retry
        self._cluster = None
        self._futures: list[Any] = []
        self._stopping = False
        self._no_workers_s = no_workers_s
        self._no_workers_since: float | None = None
        self._checked = 0.0
        self.where = f"Dask scheduler at {address}" if address else f"local Dask cluster of {local_workers} workers"
        try:
            if address:
                self.client = Client(address, timeout="10s")
                self.concurrency = 0
            else:
                with dask.config.set({"distributed.scheduler.no-workers-timeout": f"{no_workers_s}s"}):
                    self._cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                                 dashboard_address=None)
                self.client = Client(self._cluster)
                self.concurrency = local_workers
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ConfigError(f"{self.where} does not answer: {exc}") from None

    def submit(self, step: Callable[..., T], *args: Any) -> Future[T]:
        if self._lost():
            raise self.cancelled_why()
        future = self.client.submit(run_reporting, step, self._retry, *args, pure=False)
        self._futures.append(future)
        return _Unwrapped(future, self)

    def cancel(self) -> None:
        """Cancel every step not finished: pending ones never start, running ones' results are dropped
        (a chunk's records are written atomically, so none is left half-written)."""
        self._stopping = True
        pending = [f for f in self._futures if not f.done()]
        if pending:
            self.client.cancel(pending)

    def cancelled_why(self) -> FaceIdError:
        """The error a cancelled step reads as: the user's stop, else the cluster going away."""
        if self._stopping:
            return RunCancelled("run cancelled")
        if self._lost():
            # The client goes on trying to reconnect in the background and logs each failure at
            # ERROR: the loss is reported once, by this error, and the run ends with it.
            for name in ["distributed", *logging.root.manager.loggerDict]:
                if name.startswith("distributed"):  # some have levels of their own (distributed.client)
                    logging.getLogger(name).setLevel(logging.CRITICAL + 1)
            return ClusterLostError(f"{self.where}: connection lost mid-run; what was stored stays, "
                                    "re-run to resume")
        return ClusterLostError(f"{self.where} cancelled a step of the run; what was stored stays, re-run to resume")

    def no_workers(self) -> ClusterLostError:
        return ClusterLostError(f"{self.where} has had no workers for {self._no_workers_s:g} s "
                                "(setting dask_no_workers_s); what was stored stays, re-run to resume")

    def check_cluster(self) -> None:
        """Raise if the run cannot go on: stopped, scheduler lost, or no workers for too long."""
        if self._stopping:
            raise RunCancelled("run cancelled")
        if self._lost():
            raise self.cancelled_why()
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        try:
            workers = int(self.client.scheduler_info(n_workers=0).get("n_workers", 1))
        except (OSError, TimeoutError):
            raise self.cancelled_why() from None
        if workers:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since >= self._no_workers_s:
            raise self.no_workers()

    def _lost(self) -> bool:
        return self.client.status not in ("running", "newly-created")

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            # A client whose scheduler is gone would wait out its reconnect timeout.
            client.close(timeout=2) if self._lost() else client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_engine(*, workers: int, dask_address: str | None = None, dask_local: int = 0,
                retry: RetryPolicy = DEFAULT_RETRY, no_workers_s: float = 60.0) -> Engine:
    """The engine for a run in this process: Dask when asked, else a thread pool of `workers`."""
    if dask_address and dask_local:
        raise ConfigError("give either a Dask address or a local Dask cluster size, not both")
    if dask_local < 0:
        raise ConfigError(f"dask_local must be >= 0, got {dask_local}")
    if dask_address or dask_local:
        return DaskEngine(address=dask_address, local_workers=dask_local, retry=retry, no_workers_s=no_workers_s)
    return ThreadEngine(workers, retry)
