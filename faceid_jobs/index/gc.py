"""Garbage-collect index versions and shards (I/O via a Store).

Keeps the newest `keep` versions. Deletes older manifests, then every shard
no kept manifest references, with the data keys of both. A shard made for a
version newer than the newest published one belongs to a merge still in
flight and is left alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.stream import read_header
from faceid_jobs.errors import ConfigError, IntegrityError
from faceid_jobs.index.manifest import list_versions, load_manifest, manifest_key
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import SHARDS_PREFIX

__all__ = ["GcResult", "collect_garbage"]


@dataclass(frozen=True)
class GcResult:
    versions_kept: tuple[int, ...]
    versions_deleted: tuple[int, ...]
    shards_deleted: int


def collect_garbage(store: Store, keys: DataKeys, keep: int) -> GcResult:
    """Delete all but the newest `keep` index versions and unreferenced shards."""
    if keep < 1:
        raise ConfigError("--keep must be at least 1")
    versions = list_versions(store)
    if not versions:
        return GcResult((), (), 0)
    kept_versions = versions[-keep:]
    newest = versions[-1]
    kept = [load_manifest(store, keys, v) for v in kept_versions]
    referenced = {s.key for m in kept for s in m.shards}
    old = versions[:-keep]
    for v in old:
        raw = store.get(manifest_key(v))
        store.delete(manifest_key(v))
        _delete_mac_key(store, keys, raw)
    shards = 0
    for key in list(store.list(SHARDS_PREFIX)):
        if key in referenced or not key.endswith(".shard"):
            continue
        try:
            with store.open_read(key) as f:
                header, _ = read_header(f, key)
        except (IntegrityError, KeyError):
            header = None
        if header is not None and int(header.fields.get("created_version", 0)) > newest:
            continue  # a merge in flight
        store.delete(key)
        if header is not None and header.fields.get("key_ref"):
            store.delete(keys.key_of(str(header.fields["key_ref"])))
        shards += 1
    return GcResult(tuple(kept_versions), tuple(old), shards)


def _delete_mac_key(store: Store, keys: DataKeys, raw: bytes) -> None:
    import json

    with contextlib.suppress(ValueError, KeyError, TypeError):
        store.delete(keys.key_of(str(json.loads(raw)["mac_key"])))
