"""What the flows share: settings from flow parameters, the per-process caches of
model sets, workspaces (store + keys) and remote videos, the retry policy and the
task runners.

Nothing here imports numpy, onnxruntime or OpenCV at module level: the models
load inside task runs, in whichever process (a thread pool's or a Dask
worker's) runs them, once per process.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceid_jobs.config import Settings, load_settings
from faceid_jobs.errors import ConfigError, FaceIdError, StoreError

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

    from faceid_jobs.models import ModelSet
    from faceid_jobs.workspace import Workspace

__all__ = [
    "DASK_ADDRESS_ENV",
    "TRANSIENT_ERRORS",
    "backoff_delays",
    "cores",
    "default_task_runner",
    "describe_failure",
    "embedder_id",
    "fit_threads",
    "make_task_runner",
    "models_for",
    "resolve_settings",
    "retry_if_transient",
    "settings_overrides",
    "video_file",
    "workspace_for",
]

# A deployment (or `faceid-jobs serve`) points its flows at a Dask cluster with
# this variable; read when the flow modules are imported.
DASK_ADDRESS_ENV = "FACEID_JOBS_DASK_ADDRESS"

# Errors a retry can cure: I/O hiccups (network filesystems, S3, a full queue)
# and memory pressure. Corrupt input (VideoError), bad settings, missing or
# wrong models and integrity failures are never retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, StoreError, MemoryError, TimeoutError)


# ---------------------------------------------------------------- settings


def resolve_settings(
    config: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    store: str | None = None,
) -> Settings:
    """Settings of a flow run: defaults < TOML `config` < env < `overrides` < `store`.

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


class _ModelPool:
    """Loaded model sets of this process, keyed by the settings that shape them.

    A task checks a set out for the length of one chunk and returns it, so a
    process loads as many sets as it runs chunks at once (one per Dask worker
    thread, one per busy thread of a thread pool) and never one per chunk.
    Sets are not shared between concurrent chunks because the model wrappers
    keep per-instance input buffers (`SCRFD._canvas`/`_blob`,
    `ArcFace._single`), so two threads in one `detect` would overwrite each
    other's frame.
    """

    def __init__(self, max_keys: int = 2) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Any, ...], list[ModelSet]] = {}
        self._loaded: dict[tuple[Any, ...], int] = {}
        self._max_keys = max_keys

    @contextlib.contextmanager
    def checkout(self, settings: Settings) -> Iterator[ModelSet]:
        key = model_key(settings)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            models = idle.pop() if idle else None
            self._forget_old(key)
        if models is None:
            from faceid_jobs.models import load_models

            models = load_models(settings)
            with self._lock:
                self._loaded[key] = self._loaded.get(key, 0) + 1
        try:
            yield models
        finally:
            with self._lock:
                self._idle.setdefault(key, []).append(models)

    def loaded(self) -> dict[tuple[Any, ...], int]:
        """How many sets were loaded per key (for tests and logs)."""
        with self._lock:
            return dict(self._loaded)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()
            self._loaded.clear()

    def _forget_old(self, keep: tuple[Any, ...]) -> None:
        # A long-lived worker (serve, a Dask cluster) that sees new weights or
        # settings drops the idle sets of the oldest keys.
        while len(self._idle) > self._max_keys:
            oldest = next(k for k in self._idle if k != keep)
            del self._idle[oldest]


_POOL = _ModelPool()


def models_for(settings: Settings) -> contextlib.AbstractContextManager[ModelSet]:
    """`with models_for(settings) as models:` a loaded model set, reused across tasks."""
    return _POOL.checkout(settings)


def model_key(settings: Settings) -> tuple[Any, ...]:
    """The settings that change what `load_models` returns, plus the weight files' identity.

    File size and mtime enter the key, so a long-lived worker loads new
    weights dropped under the same name (and their new model ids change the
    analysis id, which reprocesses).
    """
    folder = settings.resolved_weights_dir().expanduser()
    files = []
    for name in (*settings.detector, *settings.embedder, *settings.liveness):
        path = Path(name).expanduser()
        path = path if path.is_absolute() else folder / path
        try:
            st = path.stat()
            files.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            files.append((str(path), None, None))
    return (
        str(folder), tuple(settings.detector), tuple(settings.embedder), tuple(settings.liveness),
        settings.device, settings.threads, settings.det_size, settings.det_shape, settings.det_threshold,
        settings.nms_threshold, settings.min_face_px, tuple(files),
    )


def embedder_id(settings: Settings) -> str:
    """`faceid_jobs.models.embedder_id`, imported when called (flows stay free of model code until then)."""
    from faceid_jobs.models import embedder_id as configured_embedder

    return configured_embedder(settings)


# ---------------------------------------------------------------- workspace and videos


_WS_LOCK = threading.Lock()
_WORKSPACES: dict[tuple[Any, ...], Workspace] = {}


def workspace_for(settings: Settings, *, create_key: bool = False) -> Workspace:
    """The store with its keys, opened once per process and configuration.

    Args:
        settings: uses store, kms_key_id and key_file (and `FACEID_JOBS_KEY`).
        create_key: create the key file if there is none (the flow does this
            once, before any task writes; workers never do).
    """
    from faceid_jobs.workspace import KEY_ENV, open_workspace

    key_file = settings.resolved_key_file()
    try:
        key_stat = key_file.stat().st_mtime_ns
    except OSError:
        key_stat = None
    env_key = hashlib.sha256(os.environ.get(KEY_ENV, "").encode()).hexdigest()
    cache_key = (settings.store, settings.kms_key_id, str(key_file), key_stat, env_key)
    with _WS_LOCK:
        ws = _WORKSPACES.get(cache_key)
        if ws is None or (create_key and key_stat is None):
            ws = open_workspace(settings, create_key=create_key)
            _WORKSPACES.clear()  # one configuration at a time per process is the norm
            _WORKSPACES[cache_key] = ws
    return ws


class _VideoCache:
    """Local copies of remote videos (s3://…), shared by the chunk tasks of a process.

    A video is downloaded once per process rather than once per chunk; the
    `keep` most recently used copies stay, older idle ones are deleted, and
    all are deleted at exit.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._files: dict[str, tuple[contextlib.ExitStack, Path]] = {}
        self._users: dict[str, int] = {}
        self._order: list[str] = []
        atexit.register(self.clear)

    @contextlib.contextmanager
    def path(self, uri: str, path: str) -> Iterator[Path]:
        """A local file for `uri`: `path` itself when it exists here, else a cached download."""
        if "://" not in uri or uri.startswith("file://"):
            yield Path(path)
            return
        # A remote video's planning copy was a temp file, deleted since (its
        # name may even belong to another download now): never reuse `path`.
        with self._lock:
            self._users[uri] = self._users.get(uri, 0) + 1
        try:
            yield self._fetch(uri)
        finally:
            with self._lock:
                self._users[uri] -= 1
                self._evict()

    def _fetch(self, uri: str) -> Path:
        from faceid_jobs.video import local_path

        with self._lock:
            if uri in self._files:
                self._order.remove(uri)
                self._order.append(uri)
                return self._files[uri][1]
        stack = contextlib.ExitStack()
        local = stack.enter_context(local_path(uri))
        with self._lock:
            if uri in self._files:  # another thread fetched it meanwhile
                stack.close()
                return self._files[uri][1]
            self._files[uri] = (stack, local)
            self._order.append(uri)
        return local

    def _evict(self) -> None:
        idle = [u for u in self._order if not self._users.get(u)]
        while len(self._order) > self.keep and idle:
            uri = idle.pop(0)
            self._order.remove(uri)
            self._files.pop(uri)[0].close()

    def clear(self) -> None:
        with self._lock:
            for stack, _ in self._files.values():
                with contextlib.suppress(Exception):
                    stack.close()
            self._files.clear()
            self._order.clear()


_VIDEOS = _VideoCache()


def video_file(uri: str, path: str) -> contextlib.AbstractContextManager[Path]:
    """`with video_file(job.video_uri, job.path) as local:` a local file of a planned video.

    Local sources are used in place; remote ones (whose planning copy is gone
    by the time a chunk task runs, maybe on another machine) are downloaded
    once per process and shared by its chunk tasks.
    """
    return _VIDEOS.path(uri, path)


# ---------------------------------------------------------------- failures and retries


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry I/O and memory errors, never corrupt input."""
    try:
        state.result()
    except TRANSIENT_ERRORS:
        return True
    except BaseException:
        return False
    return False


def backoff_delays(base: float, retries: int) -> list[float]:
    """Exponential backoff: base, 2·base, 4·base, … (one delay per retry)."""
    return [float(base) * 2**i for i in range(max(retries, 0))] or [0.0]


def describe_failure(exc: BaseException | None, video: str, chunk: int | None = None) -> str:
    """One line naming the video (and chunk) and the problem, as the local driver words it."""
    where = video if chunk is None else f"{video}: chunk {chunk}"
    if isinstance(exc, FaceIdError):
        text = str(exc)
        return text if video in text else f"{where}: {text}"
    if isinstance(exc, TRANSIENT_ERRORS):
        return f"{where}: {type(exc).__name__}: {exc} (retries exhausted)"
    if exc is None:
        return f"{where}: failed (no exception recorded)"
    return f"{where}: internal error ({type(exc).__name__}: {exc})"


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
    """Share the cores between chunks that run side by side in this machine's processes.

    With ``threads = 0`` every onnxruntime session takes one thread per core;
    with a thread pool of one task per core (or a local Dask cluster of N
    workers) that is cores² threads fighting over the cores. So, unless the
    user set `threads`, each concurrent chunk gets cores // concurrency. A
    remote Dask cluster's machines are unknown here and keep the setting.
    Threads do not enter the analysis id, so stored records are unaffected.
    """
    if settings.threads:
        return settings
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx else None
    concurrency = 0
    if isinstance(runner, ThreadPoolTaskRunner):
        concurrency = int(getattr(runner, "_max_workers", 0) or 0)
    elif type(runner).__name__ == "DaskTaskRunner" and not getattr(runner, "address", None):
        concurrency = int((getattr(runner, "cluster_kwargs", None) or {}).get("n_workers", 0) or 0)
    if concurrency <= 0 or concurrency > 4096:
        return settings
    return settings.replace(threads=max(1, cores() // concurrency))


def default_task_runner() -> TaskRunner[Any]:
    """Threads, or the Dask cluster named by `FACEID_JOBS_DASK_ADDRESS`."""
    return make_task_runner(dask_address=os.environ.get(DASK_ADDRESS_ENV) or None)


def cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
