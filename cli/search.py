"""`faceid-jobs search PHOTO`: where and when does this person appear?

Imports only what a search needs (no Prefect, no video decoding), so it
starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceid_jobs.cli.common import (
    SETTINGS,
    Opts,
    command,
    fmt_time,
    note,
    out,
    photo_arg,
    photo_label,
    print_json,
    read_photo_arg,
    short_paths,
    shown,
    working,
)

PhotoArg = photo_arg("look for")


@command(*SETTINGS)
def search(
    photo: PhotoArg,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Most hits to return. \\[default: 20]",
                                              show_default=False, min=1)] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", "-t", help="Lowest cosine similarity to report. \\[default: 0.4]",
        show_default=False)] = None,
    face_index: Annotated[int | None, typer.Option(
        "--face-index", help="Which face of the photo to use, 0 = largest. \\[default: largest]",
        show_default=False, min=0)] = None,
    index_version: Annotated[int | None, typer.Option(
        "--index-version", help="Search this index version. \\[default: the newest]",
        show_default=False, min=1)] = None,
    min_liveness: Annotated[float | None, typer.Option(
        "--min-liveness", help="Leave out hits whose P(live) is lower, e.g. faces on posters or "
        "screens. \\[default: 0 = keep all]", show_default=False, min=0.0, max=1.0)] = None,
    require_live: Annotated[bool, typer.Option(
        "--require-live", help="Refuse (exit 3) a photo whose face does not look live "
        "(P(live) below the live_threshold setting, 0.5).")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write a self-contained HTML report with the faces cut from the videos.",
        rich_help_panel="Output", show_default=False)] = None,
    *,
    opts: Opts,
) -> None:
    """Search the index for the face in PHOTO and list where it appears.

    Examples: [bold]faceid-jobs search ross.jpg --top-k 10 --json[/bold],
    [bold]cat ross.jpg | faceid-jobs search -[/bold],
    [bold]faceid-jobs search ross.jpg --html ross.html[/bold] (open it in any browser, offline).
    """
    from faceid_jobs.search.photo_search import search_photo
    from faceid_jobs.storage import open_store

    settings = opts.settings(top_k=top_k, threshold=threshold, min_liveness=min_liveness)
    store = open_store(settings.store)
    image = read_photo_arg(photo, settings.max_image_pixels)
    result = search_photo(photo_label(photo), settings, image=image, face_index=face_index,
                          index_version=index_version, require_live=require_live, store=store)
    if html is not None:
        from faceid_jobs.web.report import search_report, write_report

        with working("reading faces from the videos…"):
            page = write_report(html, search_report(result, image, threshold=settings.threshold))
        note(f"report written to {page}")
    if opts.json_out:
        print_json(result.to_json())
        return
    q = result.query
    tracks = result.mode == "track"
    what = "appearances" if tracks else "hits"
    live = "" if q.liveness is None else f", live {q.liveness:.2f}"
    table = Table(title=f"{shown(Path(photo_label(photo)).name)}: face {q.face_index} of {q.faces_in_photo} "
                        f"(det {q.det_score:.2f}{live}) — {len(result.hits)} {what} ≥ {settings.threshold} "
                        f"in {result.index.vectors} vectors", title_justify="left")
    columns = [("#", "right"), ("similarity", "right"), ("video", "left")]
    columns += [("from", "right"), ("to", "right"), ("best", "right")] if tracks else [("time", "right")]
    columns += [("frame", "right"), ("live", "right"), ("bbox", "left")]
    for name, justify in columns:
        table.add_column(name, justify=justify)
    names = short_paths(hit.video for hit in result.hits)
    for rank, hit in enumerate(result.hits, 1):
        times = [fmt_time(hit.timestamp_s)]
        if tracks:
            times = [fmt_time(hit.start_s or 0.0), fmt_time(hit.end_s or 0.0), *times]
        table.add_row(str(rank), f"{hit.similarity:.3f}", shown(names[hit.video]), *times, str(hit.frame),
                      "-" if hit.liveness is None else f"{hit.liveness:.2f}",
                      " ".join(f"{v:.0f}" for v in hit.bbox))
    out.print(table)
