"""`faceid-jobs people`: who appears in the archive (clusters of stored faces), naming and editing them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from faceid_jobs.cli.common import STORE, Opts, command, err, fmt_time, note, out, print_json, short_paths, shown

app = typer.Typer(help="People found in the archive by clustering the stored faces; name them once.",
                  no_args_is_help=False, invoke_without_command=True)

HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML contact sheet.",
                                              rich_help_panel="Output", show_default=False)]
# The group's --store/--config, for its subcommands (one CLI invocation per process).
_GROUP: dict[str, Any] = {}
IdArg = Annotated[str, typer.Argument(help="A person id, e.g. P000012.", show_default=False)]


def _settings(opts: Opts) -> Any:
    # `people --store S show ID` means S too.
    return dataclasses.replace(opts, store=opts.store or _GROUP.get("store"),
                               config=opts.config or _GROUP.get("config")).settings()


def _workspace(opts: Opts) -> tuple[Any, Any]:
    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.storage import open_store
    from faceid_jobs.workspace import open_workspace

    settings = _settings(opts)
    store = open_store(settings.store)
    refuse_pending(store, "people")  # a forget left half done: its person may still be among the people
    return settings, open_workspace(settings, store=store, writer=True)  # never a new key: `keys init` or `process`


def _empty(settings: Any) -> bool:
    """Nothing catalogued and no people yet: answer without keys."""
    from faceid_jobs.identity.people import list_people_versions
    from faceid_jobs.storage import open_store
    from faceid_jobs.storage.catalog import has_entries

    store = open_store(settings.store)
    return not has_entries(store) and not list_people_versions(store)


def _table(people: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("id", "name", "faces", "appearances", "videos", "first seen", "last seen"):
        table.add_column(col, justify="left" if col in ("id", "name", "first seen", "last seen") else "right")
    names = short_paths({p[end]["video"] for p in people for end in ("first_seen", "last_seen")})
    for p in people:
        first, last = p["first_seen"], p["last_seen"]
        table.add_row(shown(p["id"]), shown(p["name"] or "-"), str(p["faces"]), str(len(p["appearances"])),
                      str(p["videos"]),
                      f"{shown(names[first['video']])} {fmt_time(first['timestamp_s'])}",
                      f"{shown(names[last['video']])} {fmt_time(last['timestamp_s'])}")
    out.print(table)


def _html(path: Path, view: dict[str, Any], title: str) -> None:
    from faceid_jobs.web.people_report import people_report
    from faceid_jobs.web.report import write_report

    write_report(path, people_report(view, title=title))
    note(f"wrote {path}")


@app.callback()
@command("store", "weights_dir", "config")
def people(
    ctx: typer.Context,
    min_faces: Annotated[int | None, typer.Option("--min-faces", min=0, help="List people with at least this "
                                                  "many faces \\[default: people_min_faces, 3].",
                                                  show_default=False)] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="List at most this many people.",
                                              show_default=False)] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Cluster every stored face again (ids, names, "
                                          "merges and ignores are kept).")] = False,
    html: HtmlOpt = None,
    *,
    opts: Opts,
) -> None:
    """List the people found across the archive, most frequent first.

    New footage's tracks are clustered first (from the stored embeddings: no video is decoded); every face
    belongs to some person, --min-faces only filters the list. Ignored people are left out.

    Examples: [bold]faceid-jobs people --json[/bold], [bold]faceid-jobs people --html people.html[/bold]
    """
    if ctx.invoked_subcommand is not None:
        _GROUP.update(store=opts.store, config=opts.config)
        return
    from faceid_jobs.identity.discover import discover_people
    from faceid_jobs.identity.people_edit import people_view

    settings = _settings(opts)
    if _empty(settings):
        view: dict[str, Any] = {"people": [], "version": 0, "clustering": {"faces": 0, "seconds": 0.0}}
    else:
        settings, ws = _workspace(opts)
        result = discover_people(ws, settings, rebuild=rebuild)
        view = people_view(ws, min_faces=settings.people_min_faces if min_faces is None else min_faces,
                           limit=limit, gap_s=settings.appearance_gap_s)
        view["clustering"]["seconds"] = result.seconds
    if html is not None:
        _html(html, view, "People")
    if opts.json_out:
        print_json(view)
    else:
        c = view["clustering"]
        _table(view["people"], f"{len(view['people'])} people (version {view['version']}, "
                               f"{c.get('faces', 0)} faces clustered in {c.get('seconds', 0):.1f} s)")


@app.command("show")
@command(*STORE)
def show(pid: IdArg, html: HtmlOpt = None, *, opts: Opts) -> None:
    """One person: counts, best face and every appearance (video, from, to). Exit 2 for an unknown id."""
    from faceid_jobs.identity.people_edit import person_view

    settings, ws = _workspace(opts)
    person = person_view(ws, pid, gap_s=settings.appearance_gap_s)
    if html is not None:
        _html(html, {"people": [person]}, f"Person {person['id']}")
    if opts.json_out:
        print_json(person)
        return
    _table([person], f"{person['id']}" + (" (ignored)" if person["ignored"] else ""))
    table = Table(title="appearances", title_justify="left")
    for col in ("video", "from", "to", "best", "frame", "similarity"):
        table.add_column(col, justify="left" if col == "video" else "right")
    names = short_paths({a["video"] for a in person["appearances"]})
    for a in person["appearances"]:
        table.add_row(shown(names[a["video"]]), fmt_time(a["start_s"]), fmt_time(a["end_s"]),
                      fmt_time(a["timestamp_s"]),
                      str(a["frame"]), f"{a['similarity']:.3f}")
    out.print(table)


@app.command("name")
@command(*STORE)
def name(
    pid: IdArg,
    new_name: Annotated[str, typer.Argument(help="The person's name (an identity).", show_default=False)],
    merge_into: Annotated[bool, typer.Option("--merge-into", help="The name is enrolled already: add this "
                                             "person's faces to it.")] = False,
    no_liveness_check: Annotated[bool, typer.Option("--no-liveness-check", help="Do not require the faces' "
                                                    "stored P(live) >= live_threshold.")] = False,
    *,
    opts: Opts,
) -> None:
    """Name a person: its best faces are enrolled as that identity (gallery, audit record, event).

    Exit 2 with the reason when fewer than people_name_min_faces faces pass the quality and liveness gates,
    or when the name is enrolled already (unless --merge-into).
    """
    from faceid_jobs.cli.enroll import gallery_events, labels_hint
    from faceid_jobs.identity.people import load_state
    from faceid_jobs.identity.people_edit import name_person

    settings, ws = _workspace(opts)
    state = load_state(ws)
    events = gallery_events(ws)
    change, cands = name_person(
        ws, pid, new_name, state.embedder_id, faces=settings.people_name_faces,
        min_faces=settings.people_name_min_faces, min_quality=settings.enroll_min_quality,
        live_threshold=None if no_liveness_check else settings.live_threshold, merge_into=merge_into,
        on_change=events)
    emitted = events.emitted
    result = {"person": state.resolve(pid.strip().upper()), "name": change.names[0],
              "gallery_version": change.version, "faces_enrolled": change.embeddings, "event_emitted": emitted,
              "refused": [{"face": c.face.photo, "problem": c.problem} for c in cands if c.problem]}
    if opts.json_out:
        print_json(result)
    else:
        out.print(f"{shown(result['person'])} is now {shown(result['name'])}: {change.embeddings} faces enrolled "
                  f"(gallery version {change.version})", highlight=False)
        err.print(labels_hint(emitted), highlight=False)


@app.command("merge")
@command(*STORE)
def merge(ids: Annotated[list[str], typer.Argument(help="Two or more person ids.", show_default=False)], *,
          opts: Opts) -> None:
    """Merge people into one (the oldest id stays); kept across rebuilds."""
    from faceid_jobs.identity.people_edit import merge_people

    _, ws = _workspace(opts)
    kept = merge_people(ws, ids)
    print_json({"person": kept, "merged": sorted(set(i.upper() for i in ids) - {kept})}) if opts.json_out else \
        out.print(f"merged into {kept}", highlight=False)


@app.command("ignore")
@command(*STORE)
def ignore(pid: IdArg, undo: Annotated[bool, typer.Option("--undo", help="List the person again.")] = False, *,
           opts: Opts) -> None:
    """Leave a person (a crowd, a poster) out of the listing; kept across rebuilds."""
    from faceid_jobs.identity.people_edit import ignore_person

    _, ws = _workspace(opts)
    p = ignore_person(ws, pid, not undo)
    print_json({"person": p, "ignored": not undo}) if opts.json_out else out.print(
        f"{p} {'listed again' if undo else 'ignored'}", highlight=False)
