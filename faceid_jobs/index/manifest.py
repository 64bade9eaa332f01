"""Versioned index manifests, committed atomically (I/O via a Store).

`index/manifests/<version:020d>.json` lists the shards of one index version.
A version is published with put-if-absent (S3 If-None-Match, a hard link
locally): of two writers of the same version exactly one wins, and the loser
re-reads and retries. The highest version present is the current index;
manifests are never rewritten.

Each manifest is authenticated: an HMAC-SHA256 over its canonical JSON with a
data key of its own (wrapped by the KEK like every data key). A manifest
edited in the store, or an old one copied under a newer version number (its
body names its own version), is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.errors import IndexMissingError, IntegrityError
from faceid_jobs.index.shard import ShardRef
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import MANIFESTS_PREFIX, manifest_key, parse_manifest_key

__all__ = [
    "MANIFESTS_PREFIX",
    "MANIFEST_FORMAT",
    "Manifest",
    "commit_manifest",
    "list_versions",
    "load_manifest",
    "manifest_key",
    "republish",
]

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    """One index version."""

    version: int
    parent: int | None
    created_at: str
    embedder_id: str
    dim: int
    index_by: str
    shards: tuple[ShardRef, ...]
    kek_id: str
    # Record files merged that hold no indexable rows (so they are not pending again).
    empty_sources: tuple[str, ...] = ()
    note: str = ""

    @property
    def vectors(self) -> int:
        return sum(s.vectors for s in self.shards)

    @property
    def sources(self) -> set[str]:
        return {src for s in self.shards for src in s.sources} | set(self.empty_sources)

    def body(self) -> dict:
        data = asdict(self)
        data["shards"] = [asdict(s) | {"sources": list(s.sources)} for s in self.shards]
        data["empty_sources"] = list(self.empty_sources)
        return data


def list_versions(store: Store) -> list[int]:
    """Published versions, ascending."""
    versions = []
    for key in store.list(MANIFESTS_PREFIX):
        version = parse_manifest_key(key)
        if version is not None:
            versions.append(version)
    return sorted(versions)


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, body: dict) -> str:
    return hmac.new(key, b"faceid-manifest/v1|" + _canonical(body), hashlib.sha256).hexdigest()


def commit_manifest(store: Store, keys: DataKeys, manifest: Manifest) -> bool:
    """Publish `manifest` as its version; False if that version already exists."""
    ref, key = keys.create()
    body = manifest.body()
    envelope = {"format": MANIFEST_FORMAT, "manifest": body, "mac_key": ref, "mac": _mac(key, body)}
    return store.put_if_absent(manifest_key(manifest.version), json.dumps(envelope, indent=1).encode())


def load_manifest(store: Store, keys: DataKeys, version: int | None = None) -> Manifest:
    """The newest manifest, or `version`; authenticated before use.

    Raises:
        IndexMissingError: no version (or not that one) is published.
        IntegrityError: damaged, tampered or replayed manifest, or wrong key.
    """
    if version is None:
        versions = list_versions(store)
        if not versions:
            raise IndexMissingError(
                f"{store.uri}: no index yet (run `faceid-jobs process` on some footage first)")
        version = versions[-1]
    key = manifest_key(version)
    try:
        raw = store.get(key)
    except KeyError:
        raise IndexMissingError(f"{store.uri}: index version {version} does not exist") from None
    try:
        envelope = json.loads(raw)
        if envelope["format"] != MANIFEST_FORMAT:
            raise IntegrityError(f"{key}: manifest format {envelope['format']} is not supported")
        body, ref, mac = envelope["manifest"], envelope["mac_key"], envelope["mac"]
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{key}: damaged manifest") from None
    mac_key = keys.get(ref, key)
    if not hmac.compare_digest(_mac(mac_key, body), str(mac)):
        raise IntegrityError(f"{key}: manifest fails authentication (tampered)")
    if body.get("version") != version:
        raise IntegrityError(f"{key}: manifest of version {body.get('version')} stored as version "
                             f"{version} (replayed)")
    try:
        shards = tuple(ShardRef.from_json(s) for s in body.pop("shards"))
        empty = tuple(body.pop("empty_sources", ()))
        return Manifest(**body, shards=shards, empty_sources=empty)
    except (TypeError, KeyError):
        raise IntegrityError(f"{key}: damaged manifest") from None


def republish(store: Store, keys: DataKeys, note: str, attempts: int = 5) -> Manifest | None:
    """Publish the newest version again as version+1 (same shards), e.g. after key rotation.

    Returns the new manifest, or None when no version exists yet.
    """
    for _ in range(attempts):
        versions = list_versions(store)
        if not versions:
            return None
        base = load_manifest(store, keys, versions[-1])
        manifest = Manifest(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                               "version": base.version + 1, "parent": base.version,
                               "created_at": now(), "kek_id": keys.keyring.primary.key_id,
                               "note": note})
        if commit_manifest(store, keys, manifest):
            return manifest
    raise IntegrityError(f"{store.uri}: could not publish an index version (concurrent writers)")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
