"""`faceid-jobs index`: list, inspect, merge and garbage-collect index versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from faceid_jobs.cli.common import STORE, Opts, command, out, print_json, working

app = typer.Typer(help="Index versions: list, show, build, gc.", no_args_is_help=True)


def _workspace(opts: Opts):
    from faceid_jobs.workspace import open_workspace

    return open_workspace(opts.settings())


@app.command("list")
@command(*STORE)
def list_(*, opts: Opts) -> None:
    """Every published index version, oldest first.

    Example: [bold]faceid-jobs index list --json[/bold]
    """
    from faceid_jobs.index import list_versions, load_manifest

    ws = _workspace(opts)
    rows = []
    for v in list_versions(ws.store):
        m = load_manifest(ws.store, ws.keys, v)
        rows.append({"version": v, "parent": m.parent, "created_at": m.created_at, "shards": len(m.shards),
                     "vectors": m.vectors, "index_by": m.index_by, "kek_id": m.kek_id, "note": m.note})
    if opts.json_out:
        print_json({"versions": rows})
        return
    table = Table(title=f"index versions in {ws.store.uri}", title_justify="left")
    for col in ("version", "created_at", "shards", "vectors", "index_by", "kek_id", "note"):
        table.add_column(col, justify="right" if col in ("version", "shards", "vectors") else "left")
    for r in rows:
        table.add_row(*(str(r[c]) for c in ("version", "created_at", "shards", "vectors", "index_by",
                                             "kek_id", "note")))
    out.print(table)


@app.command("show")
@command(*STORE)
def show(version: Annotated[int | None, typer.Argument(help="Version. \\[default: newest]", show_default=False)] = None,
         *, opts: Opts) -> None:
    """One version's manifest: its shards, their sizes, checksums and sources.

    Example: [bold]faceid-jobs index show 3[/bold]
    """
    from faceid_jobs.index import load_manifest

    ws = _workspace(opts)
    m = load_manifest(ws.store, ws.keys, version)
    if opts.json_out:
        print_json(m.body())
        return
    out.print(f"version {m.version} (parent {m.parent}) created {m.created_at}: {m.vectors} vectors, "
              f"dim {m.dim}, embedder {m.embedder_id}, index_by {m.index_by}, key {m.kek_id}")
    table = Table(title_justify="left")
    for col in ("shard", "kind", "vectors", "bytes", "sha256", "sources"):
        table.add_column(col)
    for s in m.shards:
        table.add_row(s.shard_id[:12], s.kind, str(s.vectors), str(s.size), s.sha256[:16] + "…",
                      str(len(s.sources)))
    out.print(table)


@app.command("build")
@command("store", "weights_dir", "config")
def build(*, opts: Opts) -> None:
    """Merge records not yet indexed into a new version (what `process` does at its end).

    Example: [bold]faceid-jobs process ~/footage --no-index && faceid-jobs index build[/bold]
    """
    from dataclasses import asdict

    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.models import embedder_id
    from faceid_jobs.pipeline.steps import merge
    from faceid_jobs.workspace import open_workspace

    settings = opts.settings()
    ws = open_workspace(settings)
    refuse_pending(ws.store, "index build")
    embedder = embedder_id(settings)
    with working("merging records into a new index version…"):
        result = merge(settings, embedder, ws=ws)
    if opts.json_out:
        print_json(asdict(result))
    else:
        out.print(f"index version {result.version}: {result.vectors} vectors, "
                  f"{result.shards_added} new shards, {result.shards_kept} kept"
                  + ("" if result.published else " (nothing changed)"))


@app.command("gc")
@command(*STORE)
def gc(keep: Annotated[int, typer.Option("--keep", help="Newest versions to keep.", min=1)] = 3,
       *, opts: Opts) -> None:
    """Delete older versions and every shard no kept version references.

    Example: [bold]faceid-jobs index gc --keep 3[/bold]
    """
    from dataclasses import asdict

    from faceid_jobs.index.gc import collect_garbage

    ws = _workspace(opts)
    with working("deleting old versions and unreferenced shards…"):
        result = collect_garbage(ws.store, ws.keys, keep)
    if opts.json_out:
        print_json(asdict(result))
    else:
        out.print(f"kept versions {list(result.versions_kept)}; deleted {len(result.versions_deleted)} "
                  f"versions and {result.shards_deleted} shards")
