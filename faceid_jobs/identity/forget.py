"""Forget an identity or a video: gallery, records, labels, index, with an audit record (I/O via a Store).

- `forget_identity(name)`: the identity leaves the gallery (its embeddings'
  entry and data key are deleted, `faceid_jobs.identity.gallery.remove`),
  and the person discovery named so loses the name (`identity.people.clear_names`).
- with ``purge_appearances``: every stored record file (every analysis, not
  only the current one) is read, its faces labelled with the current
  gallery exactly as `relabel` does, and the faces whose face or track
  identity is the name are deleted from it. The file is rewritten under its
  own key (so a later `process` of the same footage with the same settings
  still skips the chunk) under a new data key, and the old data key is
  deleted: a copy of the old file (a backup, an S3 object version) can no
  longer be decrypted. The rewritten keys are marked stale
  (`faceid_jobs.index.merge.mark_stale`) and the index is merged into a new
  version without those faces. Older index versions still hold them until
  `index gc` (or ``gc=True``) deletes them.
- `forget_video(uri)`: every record file of the video (all analyses) with
  their data keys, and their label files are deleted; the merge then drops
  its shards, and the catalog entry goes last (a re-run finishes an
  interrupted one).

Each writes an audit record (`faceid_jobs.identity.audit`): who, when, what was done
and how much, never embeddings or images.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from faceid_jobs.crypto.mac import named_mac_key
from faceid_jobs.crypto.parquet_crypto import key_refs
from faceid_jobs.errors import ConfigError, FaceIdError, UnknownVideoError
from faceid_jobs.identity.audit import write_audit
from faceid_jobs.identity.forget_filter import intent_matrix, person_faces, without_faces
from faceid_jobs.identity.gallery import GalleryChange, OnChange, load_gallery, notify, remove
from faceid_jobs.identity.intent import ForgetIntent, clear_intent, crash_point, load_intents, new_intent, save_intent
from faceid_jobs.identity.labels import delete_labels
from faceid_jobs.identity.matching import GalleryMatrix
from faceid_jobs.identity.people import clear_names, drop_sources
from faceid_jobs.index.merge import mark_stale
from faceid_jobs.records.parquet import parquet_to_table, table_to_parquet
from faceid_jobs.storage.catalog import VideoEntry, list_entries
from faceid_jobs.storage.layout import RECORDS_PREFIX, STALE_PREFIX, VIDEOS_PREFIX, parse_record_key, video_key
from faceid_jobs.workspace import Workspace

__all__ = ["ForgetResult", "UnknownVideoError", "forget_identity", "forget_video", "record_key_refs",
           "resume_forgets", "run_intent"]

log = logging.getLogger(__name__)


@dataclass
class ForgetResult:
    """What a forget did (no biometric data: counts and keys only)."""

    action: str
    identity: str | None = None
    video: str | None = None
    gallery_version: int | None = None
    record_files_read: int = 0
    record_files_rewritten: int = 0
    record_files_deleted: int = 0
    faces_deleted: int = 0
    label_files_deleted: int = 0
    skipped_files: list[str] = field(default_factory=list)
    index: dict[str, Any] | None = None
    index_versions_holding_data: list[int] = field(default_factory=list)
    gc: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None
    audit_key: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


record_key_refs = key_refs  # the data keys of an encrypted record (or label) file


def _all_record_files(ws: Workspace) -> list[str]:
    return [k for k in ws.store.list(RECORDS_PREFIX) if k.endswith(".parquet")]


def _rewrite(ws: Workspace, key: str, old: bytes, table: pa.Table) -> None:
    """Replace a record file's content; the old file's data keys are deleted after."""
    ws.store.put(key, table_to_parquet(table, ws.cipher, key=key))
    for ref in record_key_refs(old) - record_key_refs(ws.store.get(key)):
        ws.store.delete(ws.keys.key_of(ref))


def _delete_record(ws: Workspace, key: str) -> None:
    try:
        old = ws.store.get(key)
    except KeyError:
        return
    ws.store.delete(key)
    for ref in record_key_refs(old):
        ws.store.delete(ws.keys.key_of(ref))


def forget_identity(
    ws: Workspace,
    name: str,
    *,
    embedder_id: str,
    threshold: float,
    purge_appearances: bool = False,
    merge: Callable[[], Any] | None = None,
    gc_keep: int | None = None,
    relabel_after: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_change: OnChange | None = None,
) -> ForgetResult:
    """Remove `name` from the gallery; with `purge_appearances` also its faces from records and index.

    A purge writes its intent first (`faceid_jobs.identity.intent`) and
    clears it last: the order is intent, records and labels, merge, gallery,
    clear. A pending forget of the same name (an interrupted run) is finished
    instead, even when the name already left the gallery; other pending
    forgets are finished first.

    Args:
        ws: the store and keys.
        name: an enrolled identity.
        embedder_id: the configured embedder (records of others cannot be
            compared with the gallery and are left, listed in `skipped_files`).
        threshold: `identity_threshold` (the labels `find` shows use it too).
        purge_appearances: delete the faces labelled with the name.
        merge: publishes a new index version (e.g. ``lambda: merge(settings, embedder_id, ws=ws)``);
            called after a purge.
        gc_keep: then delete all but this many newest index versions.
        relabel_after: then label the stored faces with the new gallery
            (older label versions are deleted once done).
        progress: called with (record files done, record files in all).
        on_change: called with the gallery change once everything is done
            (`faceid_jobs.identity.gallery.notify`).

    Raises:
        UnknownIdentityError: the name is not enrolled (and no forget of it is pending).
    """
    mine = None
    for intent in load_intents(ws):
        if intent.name == name and mine is None:
            mine = intent
        else:
            run_intent(ws, intent, merge=merge, gc_keep=gc_keep, relabel_after=relabel_after,
                       on_change=on_change)
    if mine is not None:
        return run_intent(ws, mine, merge=merge, gc_keep=gc_keep, relabel_after=relabel_after,
                          progress=progress, on_change=on_change)
    gallery = load_gallery(ws)
    gallery.get(name)
    if purge_appearances and name not in gallery.matrix(embedder_id).names:
        raise ConfigError(f"{name}: enrolled with another embedder than the configured one ({embedder_id}); "
                          "cannot tell which stored faces are theirs")
    intent = new_intent(name, embedder_id, threshold, purge_appearances, gallery.get(name).embeddings)
    if purge_appearances:
        save_intent(ws, intent)
        crash_point("intent")
    return run_intent(ws, intent, merge=merge, gc_keep=gc_keep, relabel_after=relabel_after,
                      progress=progress, on_change=on_change)


def resume_forgets(ws: Workspace, *, merge_for: Callable[[str], Callable[[], Any]] | None = None,
                   gc_keep: int | None = None, relabel_after: bool = True,
                   on_change: OnChange | None = None) -> list[ForgetResult]:
    """Finish every pending forget (`faceid-jobs forget --resume`); `merge_for(embedder_id)` gives its merge."""
    return [run_intent(ws, intent, merge=merge_for(intent.embedder_id) if merge_for else None, gc_keep=gc_keep,
                       relabel_after=relabel_after, on_change=on_change)
            for intent in load_intents(ws)]


def run_intent(ws: Workspace, intent: ForgetIntent, *, merge: Callable[[], Any] | None = None,
               gc_keep: int | None = None, relabel_after: bool = False,
               progress: Callable[[int, int], None] | None = None,
               on_change: OnChange | None = None) -> ForgetResult:
    """Carry out (or finish) one forget; every step is safe to run again after a crash."""
    name = intent.name
    result = ForgetResult("forget", identity=name)
    gallery = load_gallery(ws)
    seen: set[str] = set()  # record files this run has looked at
    if intent.purge_appearances:
        # Every file, even once the name left the gallery (a resumed run): a `process` running
        # while the forget was interrupted may have stored the person's faces since.
        _sweep(ws, intent, result, seen, progress)
        if result.skipped_files:
            log.warning("%d record files were made by another embedder and were not searched for %s",
                        len(result.skipped_files), name)
        _settle(ws, intent, result)
        crash_point("purged")
        _finish_index(ws, result, merge, gc_keep)
        crash_point("merged")
        _catch_up(ws, intent, result, seen, merge, gc_keep)  # chunks stored during the purge and merge
    if name in gallery.names or name in load_gallery(ws).names:
        # The "forget" record below says more than remove's own would: one record per forget.
        change = remove(ws, [name], audit=False)
        version, names = change.version, change.names
    else:
        version, names = load_gallery(ws).version, [name]
        clear_names(ws, [name])  # a run interrupted after the gallery step (remove clears it too)
    result.gallery_version = version
    crash_point("gallery")
    if relabel_after and intent.purge_appearances:
        from faceid_jobs.identity.labels import relabel

        result.labels = relabel(ws, intent.embedder_id, intent.threshold).to_json()
    result.audit_key = write_audit(ws.store, ws.keys, "forget", {
        "purge_appearances": intent.purge_appearances, "gallery_version": version,
        "faces_deleted": result.faces_deleted, "record_files_rewritten": result.record_files_rewritten,
        "index_version": (result.index or {}).get("version"),
    }, identities=[name])
    crash_point("audit")
    if intent.purge_appearances:
        # The last look before the intent goes: after it, merges no longer leave the person out.
        if _catch_up(ws, intent, result, seen, merge, gc_keep) and relabel_after:
            from faceid_jobs.identity.labels import relabel

            result.labels = relabel(ws, intent.embedder_id, intent.threshold).to_json()
        _drop_mac_keys(ws, intent.mac_keys)
        clear_intent(ws, intent)
    notify(on_change, GalleryChange(version, "remove", names, audit_key=result.audit_key))
    return result


def _sweep(ws: Workspace, intent: ForgetIntent, result: ForgetResult, seen: set[str],
           progress: Callable[[int, int], None] | None = None) -> int:
    """Purge the record files not in `seen` until a listing finds no other; returns the files rewritten.

    The first call reads every file; later ones only those a `process` stored
    since (record keys are written once, so a key seen is a file seen).
    """
    matrix = intent_matrix(ws, intent)  # the faces the merge filter leaves out are the ones deleted
    if matrix is None:  # no embeddings in the intent and the name left the gallery: nothing to tell them by
        return 0
    rewritten = 0
    while fresh := [k for k in _all_record_files(ws) if k not in seen]:
        rewritten += _purge(ws, intent, matrix, result, fresh, progress)
        seen.update(fresh)
        progress = None  # the bar counts the first listing
    return rewritten


def _settle(ws: Workspace, intent: ForgetIntent, result: ForgetResult) -> None:
    """What a rewrite (or an interrupted try) leaves: old data keys, labels, the people's nodes of those files."""
    for key, refs in intent.old_refs.items():
        try:
            live = key_refs(ws.store.get(key))
        except KeyError:
            live = set()
        for ref in set(refs) - live:
            ws.store.delete(ws.keys.key_of(ref))
    result.record_files_rewritten = len(intent.rewritten)
    result.label_files_deleted += delete_labels(ws, intent.rewritten)
    drop_sources(ws, intent.rewritten)  # the people lose those faces too (the rest are clustered again)


def _catch_up(ws: Workspace, intent: ForgetIntent, result: ForgetResult, seen: set[str],
              merge: Callable[[], Any] | None, gc_keep: int | None) -> bool:
    """Purge the chunks a `process` stored meanwhile, merging after each pass that changed one.

    Until the intent is cleared every merge leaves their faces out of the
    index, but the files still hold them: a later merge (compaction, rebuild)
    would index them again. Whether anything was rewritten.
    """
    changed = False
    while _sweep(ws, intent, result, seen):
        changed = True
        _settle(ws, intent, result)
        _finish_index(ws, result, merge, gc_keep)  # consumes their stale marks (their MAC key goes at the end)
    return changed


def _purge(ws: Workspace, intent: ForgetIntent, matrix: GalleryMatrix, result: ForgetResult,
           keys: list[str], progress: Callable[[int, int], None] | None) -> int:
    """Delete the faces labelled with the intent's name from record files `keys`; returns the files rewritten.

    Before a file is touched the intent names it and its data keys, and a
    stale mark names it (a mark on an unchanged file only costs a re-index),
    so a crash anywhere leaves nothing the next try cannot find.
    """
    name, embedder_id = intent.name, intent.embedder_id
    rewritten = 0
    for done, key in enumerate(keys, 1):
        try:
            data = ws.store.get(key)
        except KeyError:  # deleted meanwhile (forget --video)
            continue
        table = parquet_to_table(data, key, cipher=ws.cipher)
        result.record_files_read += 1
        if table.num_rows and set(table.column("embedder_id").unique().to_pylist()) != {embedder_id}:
            result.skipped_files.append(key)
            continue
        doomed = person_faces(table, matrix, name, intent.threshold)
        if doomed:
            mac_ref = ws.keys.mac_key()[0]  # the stale mark's: deleted at the end, once merged
            if key not in intent.old_refs or mac_ref not in intent.mac_keys:
                if key not in intent.old_refs:
                    intent.rewritten.append(key)
                    intent.old_refs[key] = sorted(key_refs(data))
                if mac_ref not in intent.mac_keys:
                    intent.mac_keys.append(mac_ref)
                save_intent(ws, intent)
            mark_stale(ws.store, ws.keys, [key], reason="forget --purge-appearances")
            # Labels of the file name the deleted faces: gone with them (relabel writes new ones).
            result.label_files_deleted += delete_labels(ws, [key])
            _rewrite(ws, key, data, without_faces(table, doomed))
            crash_point("rewrite")
            result.faces_deleted += len(doomed)
            rewritten += 1
        if progress:
            progress(done, len(keys))
    return rewritten


def _drop_mac_keys(ws: Workspace, refs: list[str]) -> None:
    """Delete the forget's MAC keys that no stale mark or catalog entry names any more.

    Only forget processes used them (for the stale marks of the files they
    rewrote), so once the merge consumed those marks nothing else will.
    """
    if not refs:
        return
    named = set()
    for key in [*ws.store.list(STALE_PREFIX), *ws.store.list(VIDEOS_PREFIX)]:
        with contextlib.suppress(KeyError):  # deleted meanwhile
            named.add(named_mac_key(ws.store.get(key)))
    for ref in sorted(set(refs) - named):
        ws.keys.retire_mac_key(ref)


def _finish_index(ws: Workspace, result: ForgetResult, merge: Callable[[], Any] | None,
                  gc_keep: int | None) -> None:
    from faceid_jobs.index import list_versions

    if merge is not None:
        merged = merge()
        result.index = asdict(merged) if hasattr(merged, "__dataclass_fields__") else dict(merged)
    versions = list_versions(ws.store)
    if gc_keep is not None and versions:
        from faceid_jobs.index.gc import collect_garbage

        result.gc = asdict(collect_garbage(ws.store, ws.keys, gc_keep))
        versions = list_versions(ws.store)
    result.index_versions_holding_data = [v for v in versions if versions and v < versions[-1]]


def find_video(ws: Workspace, video: str, fingerprint_mode: str = "sampled") -> VideoEntry:
    """The catalog entry for a URI or path it was seen under, a fingerprint, or a local file's content.

    Raises:
        UnknownVideoError: no catalogued video matches.
    """
    entries = list_entries(ws.store, ws.keys)
    wanted = {video}
    path = Path(video).expanduser()
    if "://" not in video:
        wanted.add(str(path.resolve()))
    for entry in entries:
        if entry.fingerprint == video or wanted & {entry.uri, *entry.other_uris}:
            return entry
    if "://" not in video and path.is_file():
        from faceid_jobs.video.fingerprint import video_fingerprint

        fp = video_fingerprint(path, fingerprint_mode)
        for entry in entries:
            if entry.fingerprint == fp:
                return entry
    raise UnknownVideoError(f"{video}: no such video in the store (see the catalog: videos/*.json)")


def forget_video(ws: Workspace, video: str, *, merge: Callable[[], Any] | None = None,
                 gc_keep: int | None = None, fingerprint_mode: str = "sampled") -> ForgetResult:
    """Delete everything stored about one video: records (all analyses), labels, then re-merge; the
    catalog entry goes last.

    The catalog entry is what a re-run finds the video by, so it outlives every
    other step: a forget interrupted anywhere (a crash, ``kill -9``) is finished
    by running it again, never answered "unknown video" while the index still
    holds the video's faces.

    Raises:
        UnknownVideoError: the video is not in the catalog.
    """
    entry = find_video(ws, video, fingerprint_mode)
    result = ForgetResult("forget-video", video=entry.uri)
    keys = [k for k in _all_record_files(ws) if (p := parse_record_key(k)) and p[1] == entry.fingerprint]
    for key in keys:
        with contextlib.suppress(KeyError, FaceIdError):  # unreadable: deleted all the same
            result.faces_deleted += parquet_to_table(ws.store.get(key), key, ["face_id"], cipher=ws.cipher).num_rows
        _delete_record(ws, key)
        crash_point("video-record")
    result.record_files_deleted = len(keys)
    result.label_files_deleted = delete_labels(ws, keys)
    drop_sources(ws, keys, deleted=True)
    _finish_index(ws, result, merge, gc_keep)  # its records are gone: the merge drops their shards
    crash_point("video-merged")
    result.audit_key = write_audit(ws.store, ws.keys, "forget-video", {
        "video": entry.uri, "fingerprint": entry.fingerprint, "record_files_deleted": len(keys),
        "faces_deleted": result.faces_deleted, "index_version": (result.index or {}).get("version"),
    })
    ws.store.delete(video_key(entry.fingerprint))
    return result
