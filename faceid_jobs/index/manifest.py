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

Format 2 chains versions: each names its predecessor's MAC (`parent_mac`), and
records the sha256 of every record file it indexes (`source_hashes`), so
`index verify` finds a record rewritten without a stale mark. Deleting the
newest versions (a rollback) is caught by the client's high-water mark
(`index/watermark.py`, on `keys.watermark`). Format 1 manifests are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.errors import IndexMissingError, IntegrityError
from faceid_jobs.index.shard import ShardRef
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import MANIFESTS_PREFIX, manifest_key, versions

__all__ = [
    "MANIFESTS_PREFIX",
    "MANIFEST_FORMAT",
    "Manifest",
    "commit_manifest",
    "list_versions",
    "load_manifest",
    "load_version",
    "manifest_key",
    "republish",
    "trust_newest",
]

MANIFEST_FORMAT = 2
_DOMAIN = b"faceid-manifest/v2|"


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
    # MAC of version `parent` (the chain), and sha256 of every source record file.
    parent_mac: str = ""
    source_hashes: dict[str, str] = field(default_factory=dict)
    # This manifest's own MAC once published or loaded (not part of the body).
    mac: str = field(default="", compare=False)

    @property
    def vectors(self) -> int:
        return sum(s.vectors for s in self.shards)

    @property
    def sources(self) -> set[str]:
        return {src for s in self.shards for src in s.sources} | set(self.empty_sources)

    def body(self) -> dict:
        data = asdict(self)
        data.pop("mac")
        data["source_hashes"] = dict(sorted(self.source_hashes.items()))
        data["shards"] = [asdict(s) | {"sources": list(s.sources)} for s in self.shards]
        data["empty_sources"] = list(self.empty_sources)
        return data


def list_versions(store: Store) -> list[int]:
    """Published versions, ascending."""
    return versions(store.list(MANIFESTS_PREFIX), MANIFESTS_PREFIX)


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, body: dict) -> str:
    return hmac.new(key, _DOMAIN + _canonical(body), hashlib.sha256).hexdigest()


def commit_manifest(store: Store, keys: DataKeys, manifest: Manifest) -> bool:
    """Publish `manifest` as its version; False if that version already exists."""
    ref, key = keys.create()
    body = manifest.body()
    mac = _mac(key, body)
    envelope = {"format": MANIFEST_FORMAT, "manifest": body, "mac_key": ref, "mac": mac}
    if not store.put_if_absent(manifest_key(manifest.version), json.dumps(envelope, indent=1).encode()):
        return False
    if keys.watermark is not None:
        keys.watermark.advance(manifest.version, mac)
    return True


def _check_watermark(store: Store, keys: DataKeys, newest: int | None) -> None:
    """Refuse a store whose newest version is older than this client has seen."""
    mark = keys.watermark.read() if keys.watermark is not None else None
    if mark is not None and (newest or 0) < mark.version:
        raise IntegrityError(f"{store.uri}: index rolled back from v{mark.version} to v{newest or 0} "
                             "(newer index manifests were deleted; see `faceid-jobs index verify`)" + _TRUST)


_TRUST = " (if you deleted or recreated this store yourself: `faceid-jobs index trust`)"


def trust_newest(store: Store, keys: DataKeys) -> int | None:
    """Make the store's newest authenticated version this client's high-water mark, even if it
    is older than the mark (after the user deleted or recreated the store on purpose).

    Returns:
        The version now trusted, None when the store has no index.

    Raises:
        IntegrityError: the newest manifest fails its own checks (MAC, chain to its parent).
    """
    versions = list_versions(store)
    newest = _load_one(store, keys, versions[-1]) if versions else None
    if newest is not None and newest.parent in versions:
        parent = _load_one(store, keys, newest.parent)
        if newest.parent_mac != parent.mac:
            raise IntegrityError(f"{manifest_key(newest.version)}: does not follow version {parent.version} "
                                 "(broken chain); not trusted")
    if keys.watermark is not None:
        keys.watermark.reset(newest.version if newest else None, newest.mac if newest else "")
    return newest.version if newest else None


def load_manifest(store: Store, keys: DataKeys, version: int | None = None) -> Manifest:
    """The newest manifest, or `version`; authenticated before use.

    Raises:
        IndexMissingError: no version (or not that one) is published.
        IntegrityError: damaged, tampered or replayed manifest, or wrong key.
    """
    versions = list_versions(store)
    _check_watermark(store, keys, versions[-1] if versions else None)
    if version is None:
        if not versions:
            raise IndexMissingError(
                f"{store.uri}: no index yet (run `faceid-jobs process` on some footage first)")
        version = versions[-1]
    manifest = _load_one(store, keys, version)
    mark = keys.watermark.read() if keys.watermark is not None else None
    if mark is not None:
        if version == mark.version and manifest.mac != mark.mac:
            raise IntegrityError(f"{manifest_key(version)}: index version {version} is not the one this "
                                 "client saw (replaced after a rollback)" + _TRUST)
        if manifest.parent == mark.version and version > mark.version and manifest.parent_mac != mark.mac:
            raise IntegrityError(f"{manifest_key(version)}: index version {version} does not follow "
                                 f"version {mark.version} this client saw (broken chain)")
        if versions and version == versions[-1]:
            keys.watermark.advance(version, manifest.mac)
    elif keys.watermark is not None and versions and version == versions[-1]:
        keys.watermark.advance(version, manifest.mac)
    return manifest


def load_version(store: Store, keys: DataKeys, version: int) -> Manifest:
    """The manifest of `version`, authenticated, without the high-water mark (for `index verify`, gc)."""
    return _load_one(store, keys, version)


def _load_one(store: Store, keys: DataKeys, version: int) -> Manifest:
    """Read and authenticate the manifest of `version` (no high-water mark check)."""
    key = manifest_key(version)
    try:
        raw = store.get(key)
    except KeyError:
        raise IndexMissingError(f"{store.uri}: index version {version} does not exist") from None
    try:
        envelope = json.loads(raw)
        if envelope["format"] != MANIFEST_FORMAT:
            older = " (written by an older faceid-jobs, not chained)" if envelope["format"] == 1 else ""
            raise IntegrityError(f"{key}: manifest format {envelope['format']} is not supported{older}")
        body, ref, mac = envelope["manifest"], envelope["mac_key"], envelope["mac"]
        if not isinstance(body, dict) or not isinstance(ref, str):
            raise TypeError
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
        return Manifest(**body, shards=shards, empty_sources=empty, mac=str(mac))
    except (TypeError, KeyError, ValueError):
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
                               "note": note, "parent_mac": base.mac, "mac": ""})
        if commit_manifest(store, keys, manifest):
            return manifest
    raise IntegrityError(f"{store.uri}: could not publish an index version (concurrent writers)")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
