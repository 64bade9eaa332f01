"""`faceid-jobs annotate SOURCE -o out.mp4`: the video with boxes, names, similarity and liveness drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceid_jobs.cli.common import SETTINGS, Opts, command, err, note, out, print_json, show_progress, shown


@command(*SETTINGS)
def annotate(
    source: Annotated[str, typer.Argument(help="Video file, camera index (0) or stream URL (rtsp://…, http://…).",
                                          show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Video to write (mp4).", show_default=False)],
    max_seconds: Annotated[float | None, typer.Option(
        "--max-seconds", help="Stop after this many seconds of video (needed for cameras and live streams).",
        show_default=False, min=0.0)] = None,
    detect_every: Annotated[int, typer.Option(
        "--detect-every", help="Analyse every n-th frame and keep its boxes for the frames between "
        "(faster; every frame is still written).", min=1)] = 1,
    *,
    opts: Opts,
) -> None:
    """Draw each face's box, name (enrolled identity at identity_threshold), similarity and liveness.

    For a file the output has the input's frame count, size and frame rate.

    Example: [bold]faceid-jobs annotate clip.mp4 -o clip-annotated.mp4[/bold]
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from faceid_jobs.annotate import annotate_video
    from faceid_jobs.identity.gallery import Gallery, list_gallery_versions, load_gallery
    from faceid_jobs.models import load_models
    from faceid_jobs.storage import open_store
    from faceid_jobs.workspace import open_workspace

    settings = opts.settings()
    target = open_store(settings.store)
    gallery = load_gallery(open_workspace(settings, store=target)) if list_gallery_versions(target) else Gallery(0)
    if not gallery.identities:
        note("nothing enrolled: every face is drawn as unknown", "note")
    models = load_models(settings)
    matrix = gallery.matrix(models.ids["embedder"], models.embedder.dim)
    progress = Progress(TextColumn("[bold]frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=not show_progress(opts), transient=False)
    task = progress.add_task("annotate", total=None)
    with progress:
        result = annotate_video(source, output, models, matrix, settings.identity_threshold,
                                live_threshold=settings.live_threshold, max_seconds=max_seconds,
                                detect_every=detect_every, max_pixels=settings.max_video_pixels,
                                progress=lambda done, total: progress.update(task, completed=done, total=total))
    if opts.json_out:
        print_json(result.to_json())
        return
    out.print(f"wrote {shown(result.output)}: {result.frames} frames at {result.fps:g} fps "
              f"({result.width}×{result.height}), "
              f"{result.faces} faces drawn, {result.identified} named, in {result.seconds:.1f} s", highlight=False)
