"""`faceid-jobs identities`: list, show and remove enrolled identities."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from faceid_jobs.cli.common import STORE, Opts, command, complete_identity, note, out, print_json, shown

app = typer.Typer(help="Enrolled identities: list, show, remove.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Identity name.", show_default=False,
                                        autocompletion=complete_identity)]


def _workspace(opts: Opts):
    from faceid_jobs.workspace import open_workspace

    return open_workspace(opts.settings())


@app.command("list")
@command(*STORE)
def list_(*, opts: Opts) -> None:
    """Every enrolled identity: photos, embedder, when enrolled and last changed."""
    from faceid_jobs.identity.gallery import identity_rows, load_gallery_version

    ws = _workspace(opts)
    manifest = load_gallery_version(ws)
    rows = identity_rows(manifest)
    if opts.json_out:
        print_json({"gallery_version": manifest.version if manifest else 0, "identities": rows})
        return
    if manifest is None:
        out.print("nothing enrolled yet (faceid-jobs enroll NAME PHOTO...)")
        return
    table = Table(title=f"gallery version {manifest.version}: {len(rows)} identities", title_justify="left")
    for col in ("name", "photos", "embedder", "enrolled", "updated"):
        table.add_column(col, justify="right" if col == "photos" else "left")
    for r in rows:
        table.add_row(shown(r["name"]), str(r["embeddings"]), r["embedder_id"], r["enrolled_at"], r["updated_at"])
    out.print(table)


@app.command("show")
@command(*STORE)
def show(name: NameArg, *, opts: Opts) -> None:
    """One identity: its enrolled photos with their quality and liveness (never the embeddings)."""
    from faceid_jobs.identity.gallery import load_gallery

    ws = _workspace(opts)
    gallery = load_gallery(ws, names=[name])
    identity = gallery.get(name)
    data = {"gallery_version": gallery.version, "name": name, "embedder_id": identity.ref.embedder_id,
            "enrolled_at": identity.ref.enrolled_at, "updated_at": identity.ref.updated_at,
            "photos": [p.to_json() for p in identity.photos]}
    if opts.json_out:
        print_json(data)
        return
    out.print(f"[bold]{shown(name)}[/bold]: {len(identity.photos)} photos, embedder {identity.ref.embedder_id}, "
              f"enrolled {identity.ref.enrolled_at}, updated {identity.ref.updated_at}", highlight=False)
    table = Table(title_justify="left")
    for col in ("photo", "faces", "quality", "live", "bbox"):
        table.add_column(col)
    for p in identity.photos:
        table.add_row(shown(p.photo), str(p.faces_in_photo), f"{p.quality:.2f}",
                      "-" if p.liveness is None else f"{p.liveness:.2f}", " ".join(f"{v:.0f}" for v in p.bbox))
    out.print(table)


@app.command("remove")
@command(*STORE)
def remove(name: NameArg, *, opts: Opts) -> None:
    """Remove an identity from the gallery (its embeddings are deleted); same as `forget NAME`.

    Its labelled faces stay in the records: `faceid-jobs forget NAME --purge-appearances` deletes them too.
    """
    from faceid_jobs.cli.enroll import gallery_events, labels_hint
    from faceid_jobs.identity.gallery import remove as remove_identity

    ws = _workspace(opts)
    events = gallery_events(ws)
    change = remove_identity(ws, [name], details={"purge_appearances": False, "via": "cli"}, on_change=events)
    emitted = events.emitted
    if opts.json_out:
        print_json(change.to_json() | {"event_emitted": emitted})
        return
    out.print(f"removed {shown(name)}: gallery version {change.version}", highlight=False)
    note(labels_hint(emitted))
