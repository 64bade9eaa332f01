"""A video's analysis made current in the catalog once its chunks were attempted (I/O via a Store)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import PurePath

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.pipeline.plan import VideoPlan
from faceid_jobs.records.parquet import open_parquet
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import VideoEntry, load_entry, save_entry
from faceid_jobs.storage.layout import record_key, record_prefix
from faceid_jobs.workspace import Workspace

__all__ = ["adopt_absolute", "count_stored_faces", "finish_video", "note_copy"]


def count_stored_faces(ws: Workspace, plan: VideoPlan) -> int:
    """Rows stored for a video's current analysis (from Parquet footers)."""
    total = 0
    for job in plan.jobs:
        key = record_key(plan.analysis_id, plan.fingerprint, job.chunk.index)
        try:
            data = ws.store.get(key)
        except KeyError:
            continue
        total += open_parquet(data, key, ws.cipher).metadata.num_rows
    return total


def finish_video(store: Store, plan: VideoPlan, embedder_id: str, failed: list[int], keys: DataKeys,
                 faces: int | None = None) -> VideoEntry:
    """Make this analysis the video's current one in the catalog.

    Called once every chunk was attempted; the other URIs the same content
    was seen under are kept, so a moved file is still recognised. `faces`
    (rows stored for the analysis) lets a re-run that skips the video report it.
    """
    previous = load_entry(store, plan.fingerprint, keys)
    others = set(previous.other_uris) | {previous.uri} if previous else set()
    others.discard(plan.uri)
    # An entry made before sources were stored absolute names this file by a path relative
    # to where that run started; the absolute name replaces it.
    others = {uri for uri in others if not _relative_form_of(uri, plan.uri)}
    entry = VideoEntry(
        fingerprint=plan.fingerprint,
        uri=plan.uri,
        fps=plan.info.fps,
        frame_count=plan.info.frame_count,
        width=plan.info.width,
        height=plan.info.height,
        analysis_id=plan.analysis_id,
        embedder_id=embedder_id,
        chunks=len(plan.jobs),
        failed_chunks=tuple(sorted(failed)),
        other_uris=tuple(sorted(others)),
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        faces=faces,
    )
    # updated_at is new on every run: compare without it, so a re-run that
    # changes nothing leaves the entry's bytes (and the index) as they are.
    if previous is not None and replace(previous, updated_at=entry.updated_at) == entry:
        return previous
    save_entry(store, entry, keys)
    if previous is not None and _relative_form_of(previous.uri, plan.uri):
        _reindex(store, entry, keys)
    return entry


def note_copy(store: Store, plan: VideoPlan, keys: DataKeys) -> VideoEntry | None:
    """Record `plan.uri` as another name of content already catalogued under another name.

    A copy's faces are the catalogued video's: it is not analysed again, and
    the entry lists it in `other_uris`. Returns the entry (None when the
    content has none yet: its first name failed to catalogue).
    """
    entry = load_entry(store, plan.fingerprint, keys)
    if entry is None or plan.uri == entry.uri or plan.uri in entry.other_uris:
        return entry
    others = {uri for uri in entry.other_uris if not _relative_form_of(uri, plan.uri)} | {plan.uri}
    entry = replace(entry, other_uris=tuple(sorted(others)))
    save_entry(store, entry, keys)
    return entry


def adopt_absolute(store: Store, entry: VideoEntry, uri: str, keys: DataKeys) -> VideoEntry:
    """Name an unchanged video's entry by `uri` when it still holds the relative path an older
    run stored for the same file (the video is not read); otherwise leave it as it is."""
    if not _relative_form_of(entry.uri, uri):
        return entry
    others = {u for u in entry.other_uris if u != uri and not _relative_form_of(u, uri)}
    entry = replace(entry, uri=uri, other_uris=tuple(sorted(others)))
    save_entry(store, entry, keys)
    _reindex(store, entry, keys)
    return entry


def _reindex(store: Store, entry: VideoEntry, keys: DataKeys) -> None:
    """Have the next merge rebuild the index rows of `entry`'s records: shards keep the name a
    video had when they were built, and its old relative name leads nowhere from another folder."""
    from faceid_jobs.index.merge import mark_stale

    prefix = record_prefix(entry.analysis_id, entry.fingerprint)
    mark_stale(store, keys, (k for k in store.list(prefix) if k.endswith(".parquet")),
               reason="video renamed to its absolute path")


def _relative_form_of(old: str, uri: str) -> bool:
    """Whether `old` is a relative local path naming `uri` (absolute): the name an older run gave
    the same video (the entry is the same content), started in a folder above the file
    (`footage/clip.mp4`) or elsewhere (`../footage/clip.mp4`: the path below the `..`s ends `uri`)."""
    if "://" in old or "://" in uri or PurePath(old).is_absolute() or not PurePath(uri).is_absolute():
        return False
    parts = PurePath(os.path.normpath(old)).parts  # a relative path keeps its `..`s only in front
    tail = parts[parts.count(".."):]
    full = PurePath(uri).parts
    return bool(tail) and len(full) > len(tail) and full[-len(tail):] == tail
