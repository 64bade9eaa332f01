"""Run `reprocess-archive` from Python (what `faceid-jobs process --prefect` calls, and
`process` whenever a Prefect API is configured).

With `PREFECT_API_URL` (environment or Prefect profile) the run is recorded on
that server and shows in its UI; with `--prefect` and none configured, Prefect
3 starts its embedded server (SQLite under `PREFECT_HOME`) for the run and
stops it at exit (~8 s), which is why a plain `process` runs the same loop in
process instead (`faceid_jobs.pipeline.process.run_local`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from faceid_jobs.config import Settings
from faceid_jobs.errors import ConfigError, StoreError
from faceid_jobs.pipeline.process import DEFAULT_RUN, RunOptions

__all__ = ["prefect_api_url", "prefect_configured", "quiet_prefect", "run_reprocess"]


def run_reprocess(
    sources: Sequence[str],
    settings: Settings,
    options: RunOptions = DEFAULT_RUN,
    *,
    console_level: str | None = "WARNING",
    retries: int = 3,
    retry_delay_seconds: float = 10.0,
    observer: Any = None,
) -> dict[str, Any]:
    """Run the `reprocess-archive` flow over `sources` and return its summary.

    Args:
        sources: video files, folders or globs.
        settings: every setting of the run (passed to the flow as overrides,
            so the flow sees exactly these).
        options: index build, verify, Dask (`RunOptions`, as for the in-process run).
        console_level: lowest level of Prefect's (and Dask's) console log lines
            on stderr, e.g. ``"WARNING"`` for the CLI, ``"INFO"`` with ``-v``;
            above INFO the flow and task run lines are left off the console
            (failures are in the summary). None leaves logging as configured.
            Logs sent to the Prefect API are never affected.
        retries, retry_delay_seconds: retries of a task after a transient error.
        observer: progress hooks (a `faceid_jobs.pipeline.process.ProcessObserver`),
            called from this process as chunks finish, video by video.

    Returns:
        `ProcessSummary.to_json()` (``orchestrator`` "prefect", ``flow_run_id``).
        The run's failures are in ``failures`` (the flow run itself is then Failed).

    Raises:
        FaceIdError: the run could not start or stopped early (bad settings,
            models missing, store unwritable; `PREFECT_API_URL` unreachable is
            a `ConfigError`).
    """
    # Prefect's embedded server gets 20 s to start by default; on a loaded
    # two-core machine (or beside another run) that is not always enough.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from faceid_jobs.flows.common import make_task_runner, settings_overrides
    from faceid_jobs.models import resolve_model_path

    runner = make_task_runner(options.dask_address, options.dask_local, settings.workers)
    # Missing models fail here, in one line, before any server starts.
    for role in ("detector", "embedder"):
        resolve_model_path(settings, role)
    with quiet_prefect(console_level):
        from faceid_jobs.flows.reprocess import reprocess_archive

        _check_api()
        flow = reprocess_archive.with_options(task_runner=runner)
        try:
            api_url = _start_embedded_server()
            with _processes_report_to(api_url):
                state = flow(
                    sources=list(sources),
                    settings=settings_overrides(settings),
                    build_index=options.build, verify=options.verify,
                    retries=retries,
                    retry_delay_seconds=retry_delay_seconds,
                    observer=observer,
                    return_state=True,
                )
        except RuntimeError as exc:
            if "ephemeral Prefect API server" not in str(exc):
                raise
            raise StoreError(
                "Prefect's embedded server did not start in time: raise "
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL to a "
                "running server (`prefect server start`)") from None
        result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, dict):  # pragma: no cover - a crashed or cancelled run
        raise RuntimeError(f"reprocess-archive ended {state.type.value}: {state.message}")
    return result


def prefect_configured() -> bool:
    """Whether a Prefect API is configured, without importing Prefect (which costs seconds).

    Looks where Prefect does for `PREFECT_API_URL`: the environment, then the
    active profile of the profiles file (`PREFECT_PROFILES_PATH`, else
    `PREFECT_HOME/profiles.toml`, else ``~/.prefect/profiles.toml``).
    """
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    profile = (profiles.get("profiles") or {}).get(active) or {}
    return bool(profile.get("PREFECT_API_URL"))


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to, or None for the embedded server."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def _check_api() -> None:
    """Fail with one line when a configured Prefect server does not answer."""
    url = prefect_api_url()
    if not url:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise ConfigError(f"Prefect server at {url} (PREFECT_API_URL) does not answer: "
                          f"{type(error).__name__}: {error}")


def _start_embedded_server() -> str | None:
    """Start Prefect's embedded server now, one process at a time per `PREFECT_HOME`; its API URL
    (None when a Prefect API is configured).

    Each embedded server creates and migrates the SQLite database as it starts;
    two starting at once on one database race, and the loser prints a traceback
    (then Prefect retries it on another port). Holding a lock file beside the
    database until this process's server answers keeps concurrent runs quiet.
    The flow then finds the same server (Prefect keeps one per process).
    """
    if prefect_api_url():
        return None
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    home = Path(get_current_settings().home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / ".faceid-jobs-server-start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        server = SubprocessASGIServer()
        server.start()
    finally:
        os.close(fd)
    return server.api_url


@contextlib.contextmanager
def _processes_report_to(api_url: str | None) -> Iterator[None]:
    """Processes started meanwhile (the local Dask cluster's workers) report to `api_url`.

    Without it each spawned worker finds no Prefect API and starts an embedded
    server of its own on the same SQLite database: its task runs are missing from
    the run's server, and the extra servers' writes collide ("database is locked"
    tracebacks).
    """
    if api_url is None:
        yield
        return
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


def _filter_root_handlers(console_filter: logging.Filter) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(console_filter)


class _ConsoleFilter(logging.Filter):
    """Drops Prefect (and Dask) records below a level from console handlers, and the
    HTTP client's request lines below WARNING.

    Flow and task run records are dropped unless the level is INFO or lower:
    the caller reports failures itself, and the runs' logs stay complete in
    the Prefect API and UI (their API handler sits on their own loggers).
    """

    _RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
    _NOISY = ("prefect", "distributed", "dask")
    _CHATTY = ("httpx", "httpcore")  # every request Prefect's client makes, at INFO

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name.startswith(self._RUN_LOGGERS):
            return self.level <= logging.INFO and record.levelno >= self.level
        if name.startswith(self._NOISY):
            return record.levelno >= self.level
        if name.startswith(self._CHATTY):
            return record.levelno >= max(self.level, logging.WARNING)
        return True


@contextlib.contextmanager
def quiet_prefect(level: str | None) -> Iterator[None]:
    """Keep Prefect's console output to `level` and above, for the duration.

    Applies to every handler of the root logger (Prefect's console handler,
    or the caller's own when it configured logging first); see
    `_ConsoleFilter`. Processes started meanwhile (the embedded server, local
    Dask workers) get the level through `PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`.
    The embedded server also gets telemetry off unless the user set it, so it
    never reaches out. None leaves logging alone.
    """
    if level is None:
        yield
        return
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"unknown log level {level!r}")
    env = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": level.upper()}
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    console_filter = _ConsoleFilter(numeric)
    handlers = []
    try:
        import prefect  # noqa: F401  (sets up Prefect's logging, with the level above)

        handlers = list(logging.getLogger().handlers)
        for handler in handlers:
            handler.addFilter(console_filter)
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(console_filter)
        if handlers and not prefect_api_url():
            # The embedded server is stopped at exit, with an INFO line; exit
            # hooks run last-registered first, so this one silences it.
            atexit.register(_filter_root_handlers, console_filter)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
