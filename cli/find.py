"""`faceid-jobs find NAME`: where an enrolled identity appears across the archive (from stored labels)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from faceid_jobs.cli.common import (
    STORE,
    Opts,
    command,
    complete_identity,
    fmt_time,
    note,
    out,
    print_json,
    short_paths,
    shown,
)
from faceid_jobs.errors import ExitCode


@command(*STORE)
def find(
    name: Annotated[str, typer.Argument(help="An enrolled identity.", show_default=False,
                                        autocompletion=complete_identity)],
    *,
    opts: Opts,
) -> None:
    """List the appearances of an enrolled identity: video, from, to, best moment, similarity.

    Reads the labels `process` and `relabel` stored (no model, no video is opened; a record file not
    labelled yet is labelled from its stored faces). Faces labelled with
    the name, and the other faces of their tracks, count; appearances of one video closer than
    appearance_gap_s are joined. Exits 1 when there is none, 2 when the name is not enrolled.

    Example: [bold]faceid-jobs find Ross --json[/bold]
    """
    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.identity.labels import find_identity
    from faceid_jobs.workspace import open_workspace

    settings = opts.settings()
    ws = open_workspace(settings)
    refuse_pending(ws.store, "find")
    result = find_identity(ws, name, gap_s=settings.appearance_gap_s, threshold=settings.identity_threshold)
    if opts.json_out:
        print_json(result.to_json())
    else:
        table = Table(title=f"{shown(name)}: {len(result.appearances)} appearances in {result.files} record files "
                            f"(gallery version {result.gallery_version})", title_justify="left")
        for col in ("#", "video", "from", "to", "best", "frame", "similarity", "faces"):
            table.add_column(col, justify="left" if col == "video" else "right")
        names = short_paths(a.video for a in result.appearances)
        for i, a in enumerate(result.appearances, 1):
            table.add_row(str(i), shown(names[a.video]), fmt_time(a.start_s), fmt_time(a.end_s),
                          fmt_time(a.timestamp_s),
                          str(a.frame), f"{a.similarity:.3f}", str(a.faces))
        out.print(table)
    if result.stale_files or result.unlabelled_files:
        note(f"{result.stale_files} record files carry labels of an older gallery version and "
             f"{result.unlabelled_files} none yet (labelled just now): run `faceid-jobs relabel`", "note")
    if not result.appearances:
        raise typer.Exit(int(ExitCode.FAILURES))
