"""`faceid-jobs enroll`: add named identities to the encrypted gallery."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from faceid_jobs.cli.common import SETTINGS, Opts, command, err, note, out, print_json, read_photo_arg, shown, warn
from faceid_jobs.errors import ConfigError

NoLivenessOpt = Annotated[bool, typer.Option(
    "--no-liveness-check", help="Do not refuse photos whose face does not look live (P(live) below "
    "live_threshold, 0.5); liveness models are then not loaded.", rich_help_panel="Security")]


def gallery_events(ws: Any) -> Any:
    """The ``on_change`` callback that emits `faceid.enrollment.changed` (``.emitted`` tells if it did)."""
    from faceid_jobs.flows.events import GalleryEvents

    return GalleryEvents(ws.store.uri)


def labels_hint(emitted: bool) -> str:
    if emitted:
        return "event faceid.enrollment.changed emitted: the relabel deployment updates the labels"
    return "labels of stored footage follow with `faceid-jobs relabel`"


@command(*SETTINGS)
def enroll(
    name: Annotated[str | None, typer.Argument(help="Identity name (e.g. Ross).", show_default=False)] = None,
    photos: Annotated[list[Path] | None, typer.Argument(help="Photos of that person, one face each; - reads "
                                                        "one from stdin.",
                                                        show_default=False)] = None,
    from_dir: Annotated[Path | None, typer.Option(
        "--from-dir", help="Enrol every identity of a folder: DIR/NAME.jpg or DIR/NAME/*.jpg.",
        rich_help_panel="Input", show_default=False)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a photo holding more than one face "
                                         "(default: enrol the largest, with a warning).")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an enrolled identity's photos "
                                          "instead of adding to them.")] = False,
    no_liveness_check: NoLivenessOpt = False,
    *,
    opts: Opts,
) -> None:
    """Enrol people: each photo must hold one face that passes the liveness and quality gates.

    The embeddings go into the store's gallery, encrypted; a new gallery version is published and the
    event [bold]faceid.enrollment.changed[/bold] is emitted when a Prefect server is configured
    (PREFECT_API_URL). With --from-dir an identity whose photo fails is left out and listed, the rest
    are enrolled (exit 3 if a photo was a spoof, 2 for other failures).

    Examples: [bold]faceid-jobs enroll Ross ross1.jpg ross2.jpg[/bold],
    [bold]faceid-jobs enroll --from-dir ./people[/bold]
    """
    from faceid_jobs.identity.enrollment import enrollment_photos, prepare_enrollment
    from faceid_jobs.identity.gallery import check_name
    from faceid_jobs.identity.gallery import enroll as enroll_gallery
    from faceid_jobs.models import load_models
    from faceid_jobs.workspace import open_workspace

    if from_dir is not None:
        if name or photos:
            raise ConfigError("give either NAME PHOTO... or --from-dir DIR, not both")
        wanted = {check_name(n): files for n, files in enrollment_photos(from_dir).items()}
    else:
        if not name or not photos:
            raise ConfigError("give NAME and at least one PHOTO (or --from-dir DIR)")
        wanted = {check_name(name): list(photos)}
    settings = opts.settings()
    # Before the models load: a missing key is refused at once (only `keys init` or `process` makes one).
    ws = open_workspace(settings, writer=True)
    models = load_models(settings, liveness=not no_liveness_check)

    def on_photo(who: str, face: Any) -> None:
        if face.faces_in_photo > 1:
            warn(f"{face.photo}: holds {face.faces_in_photo} faces; enrolled the largest for {who} "
                 "(--strict refuses such photos)")

    accepted, failures = prepare_enrollment(
        wanted, models, min_quality=settings.enroll_min_quality,
        live_threshold=None if no_liveness_check else settings.live_threshold, strict=strict,
        all_or_nothing=from_dir is None, on_photo=on_photo,
        read=lambda path: read_photo_arg(path, settings.max_image_pixels))
    for failure in failures:
        err.print(f"[red]not enrolled:[/red] {shown(failure.name)}: {shown(failure.error)}", highlight=False,
                  soft_wrap=True)
    result: dict[str, Any] = {"gallery_version": None, "enrolled": [], "failures": [asdict(f) for f in failures],
                              "event_emitted": False}
    if accepted:
        events = gallery_events(ws)
        change = enroll_gallery(ws, accepted, models.ids["embedder"], replace_existing=replace,
                                details={"liveness_checked": not no_liveness_check, "via": "cli"},
                                on_change=events)
        result["gallery_version"] = change.version
        result["enrolled"] = [{"name": n, "photos": [f.to_json() for f, _ in items]}
                              for n, items in sorted(accepted.items())]
        result["event_emitted"] = events.emitted
        result["audit_key"] = change.audit_key
    if opts.json_out:
        print_json(result)
    elif accepted:
        table = Table(title=f"gallery version {result['gallery_version']}", title_justify="left")
        for col, justify in (("identity", "left"), ("photo", "left"), ("quality", "right"), ("live", "right")):
            table.add_column(col, justify=justify)
        for row in result["enrolled"]:
            for p in row["photos"]:
                live = "-" if p["liveness"] is None else f"{p['liveness']:.2f}"
                table.add_row(shown(row["name"]), shown(p["photo"]), f"{p['quality']:.2f}", live)
        out.print(table)
        note(labels_hint(result["event_emitted"]))
    if failures:
        raise typer.Exit(max(f.exit_code for f in failures))
