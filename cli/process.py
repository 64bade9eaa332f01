"""`faceid-jobs process`: footage → faces → Parquet → index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from faceid_jobs.cli.common import (
    SETTINGS,
    Opts,
    command,
    err,
    out,
    prefect_level,
    print_json,
    show_progress,
)
from faceid_jobs.errors import ExitCode
from faceid_jobs.pipeline.process import ProcessObserver


@command(*SETTINGS)
def process(
    sources: Annotated[list[str], typer.Argument(help="Video files, folders (searched recursively) or globs.",
                                                 show_default=False)],
    sample_fps: Annotated[float | None, typer.Option(
        "--sample-fps", help="Frames per second to analyse; 0 = every frame \\[default: 4]",
        show_default=False)] = None,
    chunk_seconds: Annotated[float | None, typer.Option(
        "--chunk-seconds", help="Seconds of video per chunk (unit of work and resume) \\[default: 30]",
        show_default=False)] = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Store faces but do not rebuild the index.")]
    = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Read and fingerprint every video again, also those unchanged since they were "
        "processed (by default skipped unread).")] = False,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", help="Run the chunk tasks on this Dask scheduler (tcp://host:8786).",
        rich_help_panel="Scale-out", show_default=False)] = None,
    dask_local: Annotated[int, typer.Option(
        "--dask-local", min=0, help="Start a local Dask cluster of N worker processes for this run.",
        rich_help_panel="Scale-out", show_default=False)] = 0,
    prefect: Annotated[bool, typer.Option(
        "--prefect", help="Run as the Prefect flow reprocess-archive even when no Prefect API is configured "
        "(Prefect then starts a temporary server, ~8 s).", rich_help_panel="Scale-out")] = False,
    *,
    opts: Opts,
) -> None:
    """Detect, score and embed every face in the given videos, store them, and rebuild the index.

    Re-running skips chunks already stored with the same models and settings. Runs in this
    process; as the Prefect flow [bold]reprocess-archive[/bold] (shown in its UI) when
    PREFECT_API_URL is set (environment or Prefect profile) or with --prefect.

    Example: [bold]faceid-jobs process ~/footage --sample-fps 4[/bold]
    """
    from faceid_jobs.flows.runner import prefect_configured
    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.workspace import open_workspace

    settings = opts.settings(sample_fps=sample_fps, chunk_seconds=chunk_seconds)
    ws = open_workspace(settings, create_key=True)  # a new key file is announced by the library's log
    refuse_pending(ws.store, "process")
    with _RichObserver(enabled=show_progress(opts)) as observer:
        if prefect or prefect_configured():
            from faceid_jobs.flows.runner import run_reprocess

            summary = run_reprocess(list(sources), settings, build=not no_index, verify=verify,
                                    dask_address=dask_address, dask_local=dask_local,
                                    console_level=prefect_level(opts), observer=observer)
        else:
            from faceid_jobs.pipeline.process import run_local

            summary = run_local(list(sources), settings, build=not no_index, verify=verify, dask_address=dask_address,
                                dask_local=dask_local, observer=observer).to_json()
    if opts.json_out:
        print_json(summary)
    else:
        _print_summary(summary, ws.store.uri)
        for failure in summary["failures"]:
            err.print(f"[red]failed:[/red] {failure['error']}", highlight=False, soft_wrap=True)
    if summary["failures"]:
        raise typer.Exit(int(ExitCode.FAILURES))


def _print_summary(summary: dict, store_uri: str) -> None:
    chunks = summary["chunks"]
    table = Table(title="faceid-jobs process", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("videos (unchanged, not read)", f"{summary['videos']} ({summary.get('videos_unchanged', 0)})")
    table.add_row("chunks done / skipped / failed",
                  f"{chunks['done']} / {chunks['skipped']} / {chunks['failed']}")
    table.add_row("frames sampled", str(summary["frames_sampled"]))
    table.add_row("faces found", str(summary["faces"]))
    table.add_row("faces in store (these videos)", str(summary["faces_in_store"]))
    vectors = summary["indexed_vectors"]
    table.add_row("indexed vectors", "-" if vectors is None else str(vectors))
    table.add_row("video seconds / wall second", f"{summary['video_seconds_per_second']:.2f}")
    table.add_row("wall time", f"{summary['wall_seconds']:.1f} s")
    table.add_row("store", store_uri)
    if summary.get("flow_run_id"):
        table.add_row("Prefect flow run", summary["flow_run_id"])
    out.print(table)


class _RichObserver(ProcessObserver):
    """Progress bars on stderr: overall frames and the current video."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
            transient=False,
        )
        self.videos: TaskID | None = None
        self.current: TaskID | None = None

    def __enter__(self) -> _RichObserver:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def videos_found(self, count: int) -> None:
        self.videos = self.progress.add_task("videos", total=count)

    def video_started(self, plan) -> None:
        name = Path(plan.uri).name
        self.current = self.progress.add_task(f"  {name[:40]}", total=plan.info.frame_count)

    def chunk_finished(self, plan, frames: int, result) -> None:
        if self.current is not None:
            self.progress.advance(self.current, frames)

    def video_finished(self, uri: str) -> None:
        if self.videos is not None:
            self.progress.advance(self.videos)
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None

    def failure(self, failure) -> None:
        if self.enabled:
            self.progress.console.print(f"[yellow]skipping:[/yellow] {failure.error}",
                                        highlight=False, soft_wrap=True)

    def indexing(self) -> None:
        if self.enabled:
            self.progress.console.print("building index…")
