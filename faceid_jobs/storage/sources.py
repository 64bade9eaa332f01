"""The sources index: which source objects were seen unchanged with which fingerprint (I/O via a Store).

A mark `sources/<uri hash>/<identity hash>/<fingerprint>.<mac>.json` says:
the video at this location, while it had this identity (size, mtime_ns and
inode of a file; size, ETag and LastModified of an S3 object), had this
content fingerprint. Everything a re-run needs is in the key, so one listing
of `sources/` answers for every video of the run; the object's body (the
location, identity and fingerprint in clear JSON) is for people and audits.

The MAC (HMAC-SHA256, 128 bits, over the three names) is under one data key
per store, named by `keys/sources.json` (`DataKeys.pointed`; re-wrapped, not
replaced, by `keys rotate --reencrypt`): someone who can write the store but
holds no key cannot forge a mark that makes new footage be skipped unread,
nor move one to another location or identity. Marks name no person, only
hashes of where videos are, so they stay plaintext. A mark without a MAC (an
older format) is ignored: its video is read once more and marked again.

A mark is written only once a video's analysis is complete (no failed
chunk), and a location keeps one mark: a changed object gets a new one and
the old ones are deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import (
    SOURCES_PREFIX,
    parse_source_key,
    source_key,
    source_prefix,
    sources_mac_key_pointer,
)
from faceid_jobs.video.source import SourceObject, uri_hash

if TYPE_CHECKING:
    from faceid_jobs.crypto.envelope import DataKeys

__all__ = ["SOURCES_FORMAT", "list_marks", "record_source"]

SOURCES_FORMAT = 2
_DOMAIN = b"faceid-source-mark/v2|"


def _mac(key: bytes, location: str, identity: str, fingerprint: str) -> str:
    message = _DOMAIN + f"{location}|{identity}|{fingerprint}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _mark_key(keys: DataKeys) -> bytes:
    return keys.pointed(sources_mac_key_pointer(), "sources key pointer")[1]


def list_marks(store: Store, keys: DataKeys) -> dict[tuple[str, str], str]:
    """(uri hash, identity hash) → fingerprint, for every mark in the store (one listing; the
    MAC key is read only when there is a mark).

    Raises:
        IntegrityError: a mark fails authentication (forged, or moved to another location,
            identity or fingerprint).
    """
    parsed = [(key, names) for key in store.list(SOURCES_PREFIX) if (names := parse_source_key(key)) is not None]
    if not parsed:
        return {}
    secret = _mark_key(keys)
    marks = {}
    for key, (location, identity, fingerprint, mac) in parsed:
        if not hmac.compare_digest(_mac(secret, location, identity, fingerprint), mac):
            raise IntegrityError(f"{key}: sources mark fails authentication (forged or moved)")
        marks[location, identity] = fingerprint
    return marks


def record_source(store: Store, keys: DataKeys, source: SourceObject, fingerprint: str,
                  fingerprint_mode: str) -> str:
    """Mark `source` as seen with `fingerprint`; drop the location's other marks. Returns the key."""
    location = uri_hash(source.location)
    identity = source.identity_hash(fingerprint_mode)
    key = source_key(location, identity, fingerprint, _mac(_mark_key(keys), location, identity, fingerprint))
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
