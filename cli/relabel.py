"""`faceid-jobs relabel`: label every stored face with the current gallery (no video decoding)."""

from __future__ import annotations

from typing import Annotated

import typer

from faceid_jobs.cli.common import Opts, command, err, out, print_json, show_progress


@command("store", "weights_dir", "config")
def relabel(
    all_files: Annotated[bool, typer.Option(
        "--all", help="Relabel files already labelled for the current gallery version too "
        "(after changing identity_threshold).")] = False,
    *,
    opts: Opts,
) -> None:
    """Label the stored faces of every catalogued video with the enrolled identities.

    Works from the embeddings in the records: no video is opened, no model is run. Runs as the Prefect
    flow [bold]relabel[/bold] on each faceid.enrollment.changed event when deployed.

    Example: [bold]faceid-jobs relabel --json[/bold]
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from faceid_jobs.identity.labels import relabel as relabel_store
    from faceid_jobs.models import embedder_id
    from faceid_jobs.workspace import open_workspace

    settings = opts.settings()
    ws = open_workspace(settings)
    embedder = embedder_id(settings)
    progress = Progress(TextColumn("[bold]record files"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=not show_progress(opts), transient=True)
    task = progress.add_task("relabel", total=None)
    with progress:
        result = relabel_store(ws, embedder, settings.identity_threshold, only_missing=not all_files,
                               progress=lambda done, total: progress.update(task, completed=done, total=total))
    if opts.json_out:
        print_json(result.to_json())
        return
    if result.gallery_version == 0:
        out.print("nothing enrolled yet: no labels to write (faceid-jobs enroll NAME PHOTO...)")
        return
    out.print(f"gallery version {result.gallery_version} ({result.identities} identities): labelled "
              f"{result.files} record files ({result.files_skipped} already were), {result.labelled_faces} of "
              f"{result.faces} faces carry a name; {result.faces_per_second:,.0f} faces/s in {result.seconds:.2f} s",
              highlight=False)
