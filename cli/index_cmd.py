"""`faceid-jobs index`: list, inspect, merge and garbage-collect index versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from faceid_jobs.cli.common import STORE, Opts, command, err, out, print_json, shown, working

app = typer.Typer(help="Index versions: list, show, build, verify, gc.", no_args_is_help=True)


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
    table = Table(title=f"index versions in {shown(ws.store.uri)}", title_justify="left")
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

    Also reads every record file already indexed and indexes again one that differs from the
    version's recorded hash (a rewrite whose stale mark is gone).

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
    with working("checking indexed record files and merging into a new index version…"):
        result = merge(settings, embedder, ws=ws, rehash=True)
    if opts.json_out:
        print_json(asdict(result))
    else:
        out.print(f"index version {result.version}: {result.vectors} vectors, "
                  f"{result.shards_added} new shards, {result.shards_kept} kept"
                  + ("" if result.published else " (nothing changed)"))


@app.command("trust")
@command(*STORE)
def trust(*, opts: Opts) -> None:
    """Trust the store's newest index and gallery versions again after you deleted or recreated the store.

    This client remembers the newest index and gallery versions it saw of each store and refuses
    older ones (a rollback). When you wiped or rebuilt the store yourself, run this once: the newest
    version (checked: its MAC and its link to its parent) becomes what this client trusts.

    Example: [bold]rm -r faceid-data && faceid-jobs process ~/footage && faceid-jobs index trust[/bold]
    """
    from faceid_jobs.identity.gallery import trust_newest_gallery
    from faceid_jobs.index.manifest import trust_newest

    ws = _workspace(opts)
    version = trust_newest(ws.store, ws.keys)
    gallery = trust_newest_gallery(ws)
    if opts.json_out:
        print_json({"store": ws.store.uri, "trusted_version": version, "trusted_gallery_version": gallery})
    else:
        out.print(f"{shown(ws.store.uri)}: trusting index version {version if version is not None else '(none)'}"
                  f" and gallery version {gallery if gallery is not None else '(none)'}")


@app.command("verify")
@command(*STORE)
def verify(*, opts: Opts) -> None:
    """Check the whole store: the chain of index versions (no gap), this client's high-water mark,
    every shard of the newest version, every record file it indexes (hash, key binding, rows), every
    catalog entry, label file and stale mark, and that no record file or catalog entry the catalog or
    the index names is missing. Exit code 4 when anything fails, each problem on its own line.

    Example: [bold]faceid-jobs index verify[/bold]
    """
    from dataclasses import asdict

    from faceid_jobs.errors import IntegrityError
    from faceid_jobs.index.verify import verify_index

    ws = _workspace(opts)
    with working("verifying every index version, shard and record file…"):
        report = verify_index(ws.store, ws.keys, ws.cipher)
    if opts.json_out:
        print_json(asdict(report) | {"ok": report.ok})
    else:
        out.print(f"{len(report.versions)} index versions (newest {report.newest}), {report.shards} shards, "
                  f"{report.records} record files, {report.catalog_entries} catalog entries, "
                  f"{report.labels} label files, {report.stale_marks} stale marks checked")
    if not report.ok:
        for problem in report.problems[1:]:  # errors: shown even with -q
            err.print(f"[red]problem:[/red] {shown(problem)}", highlight=False, soft_wrap=True)
        raise IntegrityError(f"{report.problems[0]}"
                             + (f" (and {len(report.problems) - 1} more problems above)"
                                if len(report.problems) > 1 else ""))
    if not opts.json_out:
        out.print("[green]ok[/green]: nothing tampered, moved or rolled back")


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
