"""Which record files a reader must find, from authenticated objects only (I/O via a Store).

Someone with write access to the store but no key cannot forge or move an
object unnoticed, but can delete one. Reading what is listed would then give
a smaller answer with no error: a video whose catalog entry was deleted, or a
record file that is gone, simply drops out of `find`. So a reader checks the
listing against what authenticated objects say must be there:

- every catalog entry (authenticated, `storage/catalog.py`) names its
  analysis and chunk count: each chunk not in ``failed_chunks`` has a record
  file (`process` writes one per chunk, empty or not, before the entry);
- the newest index manifest (authenticated, chained, guarded by this
  client's high-water mark) names the record files it indexes: each of their
  videos has a catalog entry.

A gap is an `IntegrityError` naming the missing object (exit 4). After a
`forget --video` interrupted between deleting the entry and merging, the
hint names `index build`, which merges the index without the video.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.errors import IndexMissingError, IntegrityError
from faceid_jobs.index.manifest import list_versions, load_manifest
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import VideoEntry, list_entries
from faceid_jobs.storage.layout import RECORDS_PREFIX, parse_record_key, record_key, video_key

__all__ = ["checked_sources", "missing_records", "record_files", "source_map", "uncatalogued_sources"]

log = logging.getLogger(__name__)


def record_files(store: Store) -> set[str]:
    """Every record file key in the store (one listing of `records/`)."""
    return {key for key in store.list(RECORDS_PREFIX) if parse_record_key(key) is not None}


def source_map(entries: Iterable[VideoEntry], listed: Iterable[str], embedder_id: str) -> dict[str, str]:
    """Record file key → the video's current URI, for the listed record files of the current analysis of
    each video embedded by `embedder_id` (pure)."""
    wanted = {(e.analysis_id, e.fingerprint): e.uri for e in entries if e.embedder_id == embedder_id}
    sources: dict[str, str] = {}
    for key in listed:
        parsed = parse_record_key(key)
        if parsed is not None and (parsed[0], parsed[1]) in wanted:
            sources[key] = wanted[(parsed[0], parsed[1])]
    return sources


def missing_records(entries: Iterable[VideoEntry], listed: set[str], embedder_id: str) -> list[str]:
    """Record keys the catalog says exist (each chunk not failed) but the listing lacks (pure)."""
    missing = []
    for entry in entries:
        if entry.embedder_id != embedder_id:
            continue
        failed = set(entry.failed_chunks)
        for chunk in range(entry.chunks):
            key = record_key(entry.analysis_id, entry.fingerprint, chunk)
            if chunk not in failed and key not in listed:
                missing.append(key)
    return missing


def uncatalogued_sources(indexed: Iterable[str], entries: Iterable[VideoEntry]) -> list[str]:
    """Catalog keys of videos an index version holds record files of but the catalog lacks (pure)."""
    catalogued = {e.fingerprint for e in entries}
    fingerprints = {p[1] for key in indexed if (p := parse_record_key(key)) is not None}
    return sorted(video_key(fp) for fp in fingerprints - catalogued)


def checked_sources(store: Store, keys: DataKeys, embedder_id: str) -> dict[str, str]:
    """`source_map` of the store, after checking that nothing authenticated objects name is missing.

    Raises:
        IntegrityError: a record file of a catalogued chunk, or the catalog
            entry of an indexed video, is missing; or the index or catalog
            fails its own checks (rolled back, tampered).
    """
    entries = list_entries(store, keys)
    listed = record_files(store)
    gone = missing_records(entries, listed, embedder_id)
    if gone:
        more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
        raise IntegrityError(f"{gone[0]}: record file missing from the store, but its video's catalog entry "
                             f"lists the chunk{more} (deleted?)")
    if list_versions(store):
        try:
            manifest = load_manifest(store, keys)
        except IndexMissingError:  # deleted between the listing and the read: load_manifest's mark decides
            manifest = None
        if manifest is not None:
            lost = uncatalogued_sources(manifest.sources, entries)
            if lost:
                raise IntegrityError(f"{lost[0]}: catalog entry missing, but index version {manifest.version} "
                                     "holds the video's faces (deleted?; after an interrupted `forget --video`, "
                                     "run `faceid-jobs index build`)")
    return source_map(entries, listed, embedder_id)
