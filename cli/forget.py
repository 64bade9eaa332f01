"""`faceid-jobs forget`: remove an identity (and its appearances) or a whole video from the store."""

from __future__ import annotations

from typing import Annotated

import typer

from faceid_jobs.cli.common import Opts, command, complete_identity, note, out, print_json, shown, working
from faceid_jobs.errors import ConfigError


@command("store", "weights_dir", "config")
def forget(
    name: Annotated[str | None, typer.Argument(help="The enrolled identity to forget.", show_default=False,
                                               autocompletion=complete_identity)] = None,
    purge_appearances: Annotated[bool, typer.Option(
        "--purge-appearances", help="Also delete the stored faces labelled with the name (face or track) from "
        "the records and publish an index version without them.")] = False,
    video: Annotated[str | None, typer.Option(
        "--video", help="Instead: delete everything stored about this video (path or URI it was processed "
        "from, or its fingerprint).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish forgets that were interrupted (search, find, index build and process refuse "
        "until they are).")] = False,
    gc: Annotated[bool, typer.Option(
        "--gc", help="Then delete older index versions, which still hold the deleted faces "
        "(same as `faceid-jobs index gc --keep 1`).")] = False,
    *,
    opts: Opts,
) -> None:
    """Forget a person or a video. Writes an audit record (who, when, what; no biometric data).

    [bold]forget NAME[/bold] removes the identity from the gallery (its embeddings are deleted);
    [bold]--purge-appearances[/bold] also deletes the faces labelled with it from every record file and
    the index (a new version; older versions keep them until [bold]index gc[/bold] or --gc).
    [bold]forget --video URI[/bold] deletes the video's records, labels and catalog entry, and re-indexes.
    [bold]forget --resume[/bold] finishes a forget that was interrupted (so does running it again).

    Examples: [bold]faceid-jobs forget Ross --purge-appearances --gc[/bold],
    [bold]faceid-jobs forget --video /footage/day1.mp4[/bold]
    """
    from faceid_jobs.identity.forget import forget_identity, forget_video, resume_forgets
    from faceid_jobs.identity.intent import pending_intents
    from faceid_jobs.models import embedder_id
    from faceid_jobs.pipeline import steps
    from faceid_jobs.workspace import open_workspace

    if resume and (name is not None or video is not None or purge_appearances):
        raise ConfigError("--resume goes alone: it finishes the forgets that were interrupted")
    if not resume and (name is None) == (video is None):
        raise ConfigError("give either NAME or --video URI (or --resume)")
    if video is not None and purge_appearances:
        raise ConfigError("--purge-appearances goes with NAME; --video deletes every face of the video anyway")
    settings = opts.settings()
    ws = open_workspace(settings)
    pending = bool(pending_intents(ws.store))
    needs_embedder = purge_appearances or video is not None or pending
    embedder = embedder_id(settings) if needs_embedder else ""

    def merge_for(embedder: str):
        return lambda: steps.merge(settings, embedder, ws=ws)

    merge = merge_for(embedder)
    keep = 1 if gc else None
    if resume:
        with working("finishing interrupted forgets…"):
            done = resume_forgets(ws, merge_for=merge_for, gc_keep=keep)
        if opts.json_out:
            print_json({"resumed": [r.to_json() for r in done]})
            return
        for result in done:
            out.print(f"finished forgetting {shown(result.identity)}: gallery version {result.gallery_version}, "
                      f"{result.record_files_rewritten} record files rewritten", highlight=False)
        if not done:
            out.print("no interrupted forget", highlight=False)
        return
    if video is not None:
        with working("deleting the video's records and re-indexing…"):
            result = forget_video(ws, video, merge=merge, gc_keep=keep, fingerprint_mode=settings.fingerprint)
        emitted = False
    else:
        from faceid_jobs.cli.enroll import gallery_events

        events = gallery_events(ws)
        with working(f"forgetting {shown(name)}…"):
            result = forget_identity(ws, name, embedder_id=embedder, threshold=settings.identity_threshold,
                                     purge_appearances=purge_appearances,
                                     merge=merge if purge_appearances or pending else None,
                                     gc_keep=keep, relabel_after=purge_appearances, on_change=events)
        emitted = events.emitted
    data = result.to_json() | {"event_emitted": emitted}
    if opts.json_out:
        print_json(data)
        return
    if video is not None:
        out.print(f"forgot video {shown(result.video)}: {result.record_files_deleted} record files, "
                  f"{result.faces_deleted} faces deleted", highlight=False)
    else:
        out.print(f"forgot {shown(name)}: removed from the gallery (version {result.gallery_version})", highlight=False)
        if purge_appearances:
            out.print(f"deleted {result.faces_deleted} faces from {result.record_files_rewritten} of "
                      f"{result.record_files_read} record files", highlight=False)
    if result.index:
        out.print(f"index version {result.index.get('version')}: {result.index.get('vectors')} vectors",
                  highlight=False)
    if result.index_versions_holding_data:
        note(f"older index versions {result.index_versions_holding_data} still hold the deleted faces: "
             "run `faceid-jobs index gc --keep 1` (or forget with --gc)", "note")
    note(f"audit record: {result.audit_key}")
