"""What the flows share: settings from flow parameters, the retry condition and the
task runners.

The steps themselves, and the per-process caches of model sets, workspaces
and remote videos they use, are the library's (`faceid_jobs.pipeline.steps`);
nothing here imports numpy, onnxruntime or OpenCV.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from faceid_jobs.config import Settings, load_settings
from faceid_jobs.errors import ConfigError
from faceid_jobs.pipeline import steps
from faceid_jobs.pipeline.engines import RetryPolicy
from faceid_jobs.pipeline.steps import models_for, video_file, workspace_for
from faceid_jobs.pipeline.summary import TRANSIENT_ERRORS, describe_failure, is_transient
from faceid_jobs.text import printable

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

__all__ = [
    "DASK_ADDRESS_ENV",
    "DASK_LOCAL_ENV",
    "TRANSIENT_ERRORS",
    "backoff_delays",
    "cores",
    "dask_job_variables",
    "default_task_runner",
    "describe_failure",
    "embedder_id",
    "fit_threads",
    "make_task_runner",
    "models_for",
    "resolve_settings",
    "retry_if_transient",
    "run_logger",
    "settings_overrides",
    "store_task",
    "video_file",
    "workspace_for",
]

# A deployment (its job variables, `faceid-jobs deploy --dask-*`) or `faceid-jobs serve`
# points its flows at a Dask cluster with these variables; read when the flow modules
# are imported (the flow run's process, for a work pool's worker).
DASK_ADDRESS_ENV = "FACEID_JOBS_DASK_ADDRESS"
DASK_LOCAL_ENV = "FACEID_JOBS_DASK_LOCAL"

# ---------------------------------------------------------------- settings


def resolve_settings(
    config: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    store: str | None = None,
) -> Settings:
    """Settings of a flow run: defaults < TOML `config` < env < `overrides` < `store`.

    Every flow takes these three parameters: `store` (a folder or
    ``s3://bucket/prefix``; else from `config`, the environment, then
    ``./faceid-data``), `config` (a TOML profile on the machine running the
    flow) and `settings` (overrides, names as in `Settings`).

    Empty strings count as unset, so a deployment parameter templated from an
    unset environment variable falls back to the worker's own configuration.
    """
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    if store:
        values["store"] = store
    return load_settings(config or None, values)


def settings_overrides(settings: Settings) -> dict[str, Any]:
    """Every field of `settings` as JSON-friendly flow parameters (tuples → lists)."""
    return {
        f.name: list(v) if isinstance(v, tuple) else v
        for f in dataclasses.fields(settings)
        if not f.metadata.get("secret")  # e.g. api_token: never stored as a flow parameter
        for v in [getattr(settings, f.name)]
    }


# ---------------------------------------------------------------- models


def embedder_id(settings: Settings) -> str:
    """`faceid_jobs.models.embedder_id`, imported when called (flows stay free of model code until then)."""
    from faceid_jobs.models import embedder_id as configured_embedder

    return configured_embedder(settings)


# ---------------------------------------------------------------- failures and retries


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry I/O and memory errors, never corrupt input."""
    try:
        state.result()
    except BaseException as exc:
        return is_transient(exc)
    return False


def backoff_delays(base: float, retries: int) -> list[float]:
    """Exponential backoff: base, 2·base, 4·base, … (one delay per retry), as in-process runs use."""
    return RetryPolicy(retries, float(base)).delays() or [0.0]


def store_task(name: str, *, delay_s: float = 5.0, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """A Prefect task over the store: never cached (its inputs are the store's state), transient I/O
    errors retried twice with backoff, corrupt input never."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name=name, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=backoff_delays(delay_s, 2),
                retry_condition_fn=retry_if_transient, **options)


# ---------------------------------------------------------------- task runners


def make_task_runner(dask_address: str | None = None, dask_local: int = 0, workers: int = 0) -> TaskRunner[Any]:
    """The task runner for a run.

    Args:
        dask_address: ``tcp://host:8786``: run tasks on that existing Dask cluster.
        dask_local: > 0: start a local Dask cluster of that many worker
            processes (one thread each) for the run.
        workers: threads of the default thread pool (chunks at once); 0 = one per core.

    Default: a thread pool with one thread per core (onnxruntime and OpenCV
    release the GIL).
    """
    if dask_address and dask_local:
        raise ConfigError("give either a Dask address or a local Dask cluster size, not both")
    if dask_local < 0:
        raise ConfigError(f"dask_local must be >= 0, got {dask_local}")
    if dask_address or dask_local:
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:  # pragma: no cover - declared dependency
            raise ConfigError("Dask runs need prefect-dask (pip install prefect-dask)") from None
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": dask_local,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        })
    from prefect.task_runners import ThreadPoolTaskRunner

    if workers < 0:
        raise ConfigError(f"workers must be >= 0, got {workers}")
    return ThreadPoolTaskRunner(max_workers=workers or cores())


def fit_threads(settings: Settings) -> Settings:
    """`faceid_jobs.pipeline.steps.fit_threads` for the running flow's task runner: a thread
    pool of N or a local Dask cluster of N workers shares the cores N ways; a remote
    cluster's machines are unknown here and keep the setting."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx else None
    concurrency = 0
    if isinstance(runner, ThreadPoolTaskRunner):
        concurrency = int(getattr(runner, "_max_workers", 0) or 0)
    elif type(runner).__name__ == "DaskTaskRunner" and not getattr(runner, "address", None):
        concurrency = int((getattr(runner, "cluster_kwargs", None) or {}).get("n_workers", 0) or 0)
    return steps.fit_threads(settings, concurrency if 0 < concurrency <= 4096 else 0)


def default_task_runner() -> TaskRunner[Any]:
    """Threads; or the Dask cluster named by `FACEID_JOBS_DASK_ADDRESS`; or a local cluster of
    `FACEID_JOBS_DASK_LOCAL` worker processes."""
    local = os.environ.get(DASK_LOCAL_ENV) or "0"
    try:
        workers = int(local)
    except ValueError:
        raise ConfigError(f"{DASK_LOCAL_ENV} must be a number of workers, got {local!r}") from None
    return make_task_runner(dask_address=os.environ.get(DASK_ADDRESS_ENV) or None, dask_local=workers)


def dask_job_variables(dask_address: str | None = None, dask_local: int = 0) -> dict[str, Any]:
    """A deployment's job variables that run its flows' tasks on Dask (empty: threads).

    Raises:
        ConfigError: both given, or a negative cluster size.
    """
    make_task_runner(dask_address, dask_local)  # the same checks as a run
    env = {DASK_ADDRESS_ENV: dask_address} if dask_address else {DASK_LOCAL_ENV: str(dask_local)} if dask_local \
        else {}
    return {"env": env} if env else {}


cores = steps.cores


class _PrintableLog(logging.LoggerAdapter):
    """A logger whose lines are formatted here and made printable (one line, control characters as escapes)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self.logger.log(level, printable(text), **kwargs)


def run_logger() -> logging.LoggerAdapter[Any]:
    """The Prefect run logger, with every line made printable: lines quote video names, URIs and
    identity names that files and the store control, and the Prefect UI and log files show them raw."""
    from prefect import get_run_logger

    return _PrintableLog(get_run_logger(), {})
