"""`faceid-jobs process`: footage → faces → Parquet → index."""

from __future__ import annotations

from collections import Counter
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
    note,
    out,
    prefect_level,
    print_json,
    short_paths,
    show_progress,
    shown,
)
from faceid_jobs.cli.stop import current_stop
from faceid_jobs.errors import ConfigError, ExitCode
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
    rotate: Annotated[str | None, typer.Option(
        "--rotate", help="Turn decoded frames clockwise before analysis: 0 | 90 | 180 | 270 | auto (per chunk, "
        "the way up that shows faces); rotation metadata is always applied. \\[default: 0]",
        show_default=False)] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Leave out files matching this glob (path relative to the folder given, or file name); "
        "repeatable.", show_default=False)] = None,
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
    settings = opts.settings(sample_fps=sample_fps, chunk_seconds=chunk_seconds, rotate=rotate,
                             exclude=tuple(exclude) if exclude else None)
    _check_before_run(list(sources), settings)  # before the heavy imports: a typo is refused at once

    from faceid_jobs.flows.runner import prefect_configured
    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.pipeline.process import RunOptions
    from faceid_jobs.workspace import open_workspace

    options = RunOptions(build=not no_index, verify=verify, dask_address=dask_address, dask_local=dask_local)

    ws = open_workspace(settings, create_key=True)  # a new key file is announced by the library's log
    refuse_pending(ws.store, "process")
    stop = current_stop()
    # The first SIGINT/SIGTERM sets stop's event: the run stops new work, drops running chunks and
    # returns what it stored (a Prefect run then ends Cancelled); a second exits at once.
    with _RichObserver(enabled=show_progress(opts)) as observer, stop.cancelling() as cancel:
        if prefect or prefect_configured():
            from faceid_jobs.flows.runner import run_reprocess

            summary = run_reprocess(list(sources), settings, options, console_level=prefect_level(opts),
                                    observer=observer)
        else:
            from faceid_jobs.pipeline.process import run_local

            summary = run_local(list(sources), settings, options, observer=observer, cancel=cancel).to_json()
    if summary.get("interrupted") or cancel.is_set():
        message = f"interrupted: {summary['chunks']['done']} chunks done, re-run to resume"
        if opts.json_out:  # the chunks stored so far, and the error object's fields
            print_json({**summary, "error": message, "code": "interrupted", "exit": stop.exit_code})
        err.print(message, highlight=False, soft_wrap=True)
        raise typer.Exit(stop.exit_code)
    if opts.json_out:
        print_json(summary)
    else:
        _print_summary(summary, ws.store.uri)
        for failure in summary["failures"]:
            # An unreadable file that does not fail the run (fail_on_bad_files false) is a warning.
            tag = "[red]failed:[/red]" if not summary["ok"] or not failure.get("bad_file") \
                else "[yellow]bad file:[/yellow]"
            err.print(f"{tag} {shown(failure['error'])}", highlight=False, soft_wrap=True)
    if summary.get("skipped_files"):
        note(_skipped_note(summary["skipped_files"]))
    if not summary["ok"]:
        raise typer.Exit(int(ExitCode.FAILURES))


def _skipped_note(skipped: list[dict]) -> str:
    """One line: how many files the folder walk left out, by reason."""
    reasons = Counter(f["reason"] for f in skipped)
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return f"{len(skipped)} file(s) left out of the folder walk ({parts}); --json lists them"


def _check_before_run(sources: list[str], settings) -> None:
    """Refuse in one line, before any orchestration starts, a run that cannot do anything:
    every source missing (some missing among others are failures of the run), models missing.

    Raises:
        ConfigError: no source names anything (exit 2).
        ModelError: the detector or embedder file is missing (exit 5).
    """
    from faceid_jobs.pipeline.sources import missing_sources

    wanted = [s for s in sources if s and s.strip()]
    missing = missing_sources(wanted)
    if wanted and len(missing) == len(wanted):
        raise ConfigError("; ".join(f"{source}: {reason}" for source, reason in missing))
    from faceid_jobs.models import resolve_model_path

    for role in ("detector", "embedder"):
        resolve_model_path(settings, role)


def _print_summary(summary: dict, store_uri: str) -> None:
    chunks = summary["chunks"]
    table = Table(title="faceid-jobs process", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("videos (unchanged, not read)", f"{summary['videos']} ({summary.get('videos_unchanged', 0)})")
    table.add_row("chunks done / skipped / failed",
                  f"{chunks['done']} / {chunks['skipped']} / {chunks['failed']}")
    if summary.get("skipped_files"):
        table.add_row("files skipped (not videos, excluded)", str(len(summary["skipped_files"])))
    if summary.get("bad_files"):
        table.add_row("unreadable videos", str(len(summary["bad_files"])))
    table.add_row("frames sampled", str(summary["frames_sampled"]))
    table.add_row("faces found", str(summary["faces"]))
    table.add_row("faces in store (these videos)", str(summary["faces_in_store"]))
    copies = summary.get("copies", [])
    if copies:
        table.add_row("copies (same content, counted once)", str(len(copies)))
    vectors = summary["indexed_vectors"]
    table.add_row("indexed vectors", "-" if vectors is None else str(vectors))
    table.add_row("video seconds / wall second", f"{summary['video_seconds_per_second']:.2f}")
    table.add_row("wall time", f"{summary['wall_seconds']:.1f} s")
    table.add_row("store", shown(store_uri))
    if summary.get("flow_run_id"):
        table.add_row("Prefect flow run", summary["flow_run_id"])
    out.print(table)
    names = short_paths({uri for c in copies for uri in (c["video"], c["same_as"])})
    for c in copies:
        note(f"{names[c['video']]} is the same video as {names[c['same_as']]} (analysed and counted once)")


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
        self.current = self.progress.add_task(f"  {shown(name[:40])}", total=plan.info.frame_count)

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
            self.progress.console.print(f"[yellow]skipping:[/yellow] {shown(failure.error)}",
                                        highlight=False, soft_wrap=True)

    def indexing(self) -> None:
        if self.enabled:
            self.progress.console.print("building index…")
