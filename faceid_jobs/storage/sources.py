"""The sources index: which source objects were seen unchanged with which fingerprint (I/O via a Store).

A mark `sources/<uri hash>/<identity hash>/<fingerprint>.json` says: the
video at this location, while it had this identity (size, mtime_ns and inode
of a file; size, ETag and LastModified of an S3 object), had this content
fingerprint. Everything a re-run needs is in the key, so one listing of
`sources/` answers for every video of the run; the object's body (the
location, identity and fingerprint in clear JSON) is for people and audits.

A mark is written only once a video's analysis is complete (no failed
chunk), and a location keeps one mark: a changed object gets a new one and
the old ones are deleted. The marks are plaintext and unauthenticated: they
name no person, only hashes of where videos are; a forged mark can make a
new video be skipped unread (docs/SECURITY.md says what it can and cannot do;
`--verify` ignores marks).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import SOURCES_PREFIX, parse_source_key, source_key, source_prefix
from faceid_jobs.video.source import SourceObject, uri_hash

__all__ = ["SOURCES_FORMAT", "list_marks", "record_source"]

SOURCES_FORMAT = 1


def list_marks(store: Store) -> dict[tuple[str, str], str]:
    """(uri hash, identity hash) → fingerprint, for every mark in the store (one listing)."""
    marks = {}
    for key in store.list(SOURCES_PREFIX):
        parsed = parse_source_key(key)
        if parsed is not None:
            marks[parsed[0], parsed[1]] = parsed[2]
    return marks


def record_source(store: Store, source: SourceObject, fingerprint: str, fingerprint_mode: str) -> str:
    """Mark `source` as seen with `fingerprint`; drop the location's older marks. Returns the key."""
    location = uri_hash(source.location)
    key = source_key(location, source.identity_hash(fingerprint_mode), fingerprint)
    present = list(store.list(source_prefix(location)))
    if key not in present:
        body = {"format": SOURCES_FORMAT, "location": source.location, "identity": source.identity(),
                "fingerprint_mode": fingerprint_mode, "fingerprint": fingerprint,
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        store.put(key, json.dumps(body, indent=1, sort_keys=True).encode())
    for stale in present:
        if stale != key:
            store.delete(stale)
    return key
