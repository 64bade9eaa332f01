"""`faceid-jobs deploy` and `faceid-jobs serve`: the Prefect deployments (see docs/PREFECT.md)."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from faceid_jobs.cli.common import STORE, Opts, command, note, out, prefect_level, print_json, splice_params
from faceid_jobs.flows.deploy import DeploySpec

SourcesOpt = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", envvar="FACEID_JOBS_ARCHIVE", show_default=False,
                 help="Footage the nightly reprocess reads (folder, file or glob, as the workers see it); "
                      "repeatable; env FACEID_JOBS_ARCHIVE."),
]


def _schedule_opt(flag: str, what: str, field: str) -> Any:
    """A --*-cron / --timezone option; its default is the `DeploySpec` field's, shown in the help."""
    default = DeploySpec.__dataclass_fields__[field].default
    return Annotated[str | None, typer.Option(flag, help=f"{what} \\[default: {default}]", show_default=False,
                                              rich_help_panel="Schedules")]


ReprocessCronOpt = _schedule_opt("--reprocess-cron", "Cron of the nightly reprocess", "reprocess_cron")
IndexCronOpt = _schedule_opt("--index-cron", "Cron of the fallback index rebuild", "index_cron")
PeopleCronOpt = _schedule_opt("--people-cron", "Cron of the full people rebuild", "people_cron")
TimezoneOpt = _schedule_opt("--timezone", "Time zone of the crons", "timezone")
_SCHEDULES = {"reprocess_cron": ReprocessCronOpt, "index_cron": IndexCronOpt, "people_cron": PeopleCronOpt,
              "timezone": TimezoneOpt}


def _with_schedules(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the schedule options; it receives them as `schedules` (`DeploySpec` field → value)."""
    added = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=a)
             for n, a in _SCHEDULES.items()]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, schedules={n: kwargs.pop(n) for n in _SCHEDULES}, **kwargs)

    return splice_params(fn, wrapper, "schedules", added, at_end=False)


def _spec(sources: list[str] | None, opts: Opts, schedules: dict[str, str | None], **dask: Any) -> DeploySpec:
    from faceid_jobs.flows.deploy import spec_from

    return spec_from(
        sources or [],
        store=opts.store,
        config=str(Path(opts.config).expanduser().resolve()) if opts.config else None,
        **schedules,
        **dask,
    )


@command(*STORE)
@_with_schedules
def deploy(
    sources: SourcesOpt = None,
    work_pool: Annotated[str, typer.Option(
        "--work-pool", "-p", help="Work pool whose workers run the flows.")] = "faceid",
    create_pool: Annotated[bool, typer.Option(
        "--create-pool/--no-create-pool",
        help="Create a process work pool of that name if none exists.")] = True,
    gpu_limit: Annotated[int | None, typer.Option(
        "--gpu-limit", min=1, show_default=False,
        help="Set the concurrency limit on the `gpu` tag: chunk tasks running at once, over all workers.")]
    = None,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", show_default=False, rich_help_panel="Scale-out",
        help="The flow runs send their tasks to this Dask scheduler (tcp://host:8786; a job variable).")] = None,
    dask_local: Annotated[int, typer.Option(
        "--dask-local", min=0, show_default=False, rich_help_panel="Scale-out",
        help="Each flow run starts a local Dask cluster of N worker processes (a job variable).")] = 0,
    *,
    schedules: dict[str, str | None],
    opts: Opts,
) -> None:
    """Register the deployments on your Prefect server (PREFECT_API_URL).

    [bold]reprocess-archive/nightly[/bold] (cron), [bold]rebuild-index/on-enrollment[/bold] and
    [bold]relabel/on-enrollment[/bold] (event faceid.enrollment.changed, nightly fallback),
    [bold]people-discovery/weekly-rebuild[/bold] (cron). Start a worker to run them:
    [bold]prefect worker start --pool faceid[/bold]. Same as [bold]prefect --no-prompt deploy --all[/bold]
    with the repository's prefect.yaml.
    """
    from faceid_jobs.flows.deploy import deploy_all
    from faceid_jobs.flows.runner import quiet_prefect

    spec = _spec(sources, opts, schedules, dask_address=dask_address, dask_local=dask_local or None)
    with quiet_prefect(prefect_level(opts)):
        names = deploy_all(spec, work_pool, create_pool=create_pool, gpu_limit=gpu_limit)
    if opts.json_out:
        print_json({"deployments": names, "work_pool": work_pool})
        return
    for name in names:
        out.print(f"deployed [bold]{name}[/bold] to work pool [bold]{work_pool}[/bold]", highlight=False)
    note(f"start a worker: prefect worker start --pool {work_pool}")


@command(*STORE, json_output=False)
@_with_schedules
def serve(
    sources: SourcesOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, show_default=False,
                                              help="Most flow runs at once \\[default: no limit]")] = None,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", show_default=False,
        help="Run the flows' tasks on this Dask scheduler (tcp://host:8786).")] = None,
    *,
    schedules: dict[str, str | None],
    opts: Opts,
) -> None:
    """Run the deployments' schedules and trigger on this machine until Ctrl-C (prefect.serve).

    Uses the Prefect server of PREFECT_API_URL (needed for the event trigger), else the embedded one.
    """
    from faceid_jobs.flows.common import DASK_ADDRESS_ENV

    if dask_address:
        # Read when the flow modules load, here and in the runs serve starts.
        os.environ[DASK_ADDRESS_ENV] = dask_address
    from faceid_jobs.flows.deploy import serve_all

    serve_all(_spec(sources, opts, schedules), limit=limit)
