"""Re-encrypt a whole store under new data keys, then delete the old ones (`keys rotate --reencrypt`; I/O).

A plain rotation re-wraps the data keys under a new KEK: the key bytes stay,
so the old KEK plus an old copy of `keys/data/` still opens every object.
Re-encryption replaces the key bytes themselves. It runs inside the rotation's
lease (`crypto/lease.py`, marked ``reencrypt``), under which every data key
it makes is wrapped by the new KEK and every other writer refuses to make
one; so "old" is simply "a data key still wrapped by the old KEK", a fact
the store itself keeps, and an interrupted run resumes by looking again.

Each object is rewritten at its own store key under a new data key before any
old key is deleted:

- record files and label files: decrypted and checked (binding, schema,
  rows) by their own readers, written again by their own writers;
- gallery versions and entries, people versions, forget intents, search
  results: sealed containers, opened and sealed again with the same header fields;
- catalog entries and stale marks: authenticated again with this process's MAC key;
- the index: the newest version's shards are copied segment by segment under
  new ids and keys (`index/shard.reencrypt_shard`, so searches answer the
  same), and published as the next version through the normal manifest
  commit (its chain and the client's high-water mark move forward), with
  the new sha256 of every record file re-encrypted here; older versions are
  then collected (`index/gc`), as their shards' keys are about to go;
- the audit key (`keys/audit.json`, and any key an audit record names) is
  kept, re-wrapped: audit records hold names only as hashes under it, and the
  names needed to hash them again are not stored; so is the sources marks'
  key (`keys/sources.json`): their MACs are in their names.

Then every data key still wrapped by the old KEK is deleted.
`FACEID_JOBS_TEST_CRASH_AT` = reencrypt-record (after the first record file),
reencrypt-index (new index version published, older ones not yet
collected), reencrypt-swept (old keys deleted, key files not yet swapped)
ends the process there.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.mac import named_mac_key, open_sealed_json, seal_json
from faceid_jobs.crypto.parquet_crypto import RecordCipher, key_refs
from faceid_jobs.crypto.stream import open_sealed, read_header, seal
from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import (
    AUDIT_PREFIX,
    FORGET_JOURNAL_PREFIX,
    GALLERY_ENTRIES_PREFIX,
    GALLERY_VERSIONS_PREFIX,
    LABELS_PREFIX,
    PEOPLE_PREFIX,
    QUERIES_PREFIX,
    RECORDS_PREFIX,
    STALE_PREFIX,
    VIDEOS_PREFIX,
    audit_name_key_pointer,
    parse_label_key,
    parse_record_key,
    parse_video_key,
    sources_mac_key_pointer,
)
from faceid_jobs.testhooks import crash_point

__all__ = ["KINDS", "Progress", "ReencryptResult", "reencrypt_store"]

# What is re-encrypted, in this order (records before the index: it records their new hashes).
KINDS = ("records", "labels", "gallery entries", "gallery versions", "people versions", "forget intents",
         "query results", "catalog entries", "stale marks", "index shards")
_SEALED = {"gallery entries": GALLERY_ENTRIES_PREFIX, "gallery versions": GALLERY_VERSIONS_PREFIX,
           "people versions": PEOPLE_PREFIX, "forget intents": FORGET_JOURNAL_PREFIX,
           "query results": QUERIES_PREFIX}

# progress(kind, objects of that kind looked at so far, how many there are)
Progress = Callable[[str, int, int], None]


@dataclass
class ReencryptResult:
    reencrypted: dict[str, int] = field(default_factory=dict)  # objects rewritten, by kind
    index_version: int | None = None  # the version published with the re-encrypted shards
    index_versions_collected: int = 0
    audit_keys_kept: int = 0  # re-wrapped, not replaced (see the module docstring)
    old_keys_deleted: int = 0


def reencrypt_store(store: Store, keys: DataKeys, old_kek: str, progress: Progress | None = None
                    ) -> ReencryptResult:
    """Rewrite every object under data keys of the new KEK, then delete the data keys of `old_kek`.

    `keys` holds the new KEK as primary and the old one, with `reencrypting` set,
    under a lease marked ``reencrypt``. Safe to run again after any interruption.

    Raises:
        IntegrityError: an object fails its own checks (it is left as it was; nothing is deleted).
    """
    from faceid_jobs.workspace import Workspace

    ws = Workspace(store, keys, RecordCipher(keys))
    result = ReencryptResult()
    old = keys.wrapped_by(old_kek)
    tell = progress or (lambda kind, done, total: None)
    rewritten: dict[str, str] = {}  # record key -> sha256 of the file written here
    for kind in KINDS:
        if kind == "index shards":
            done = _index(ws, old, kind, tell, result, rewritten)
        else:
            targets = _list(store, kind)
            done = 0
            for i, key in enumerate(targets):
                if _one(ws, kind, key, old, rewritten):
                    done += 1
                    if kind == "records":
                        crash_point("reencrypt-record")
                tell(kind, i + 1, len(targets))
        result.reencrypted[kind] = done
    for ref in _audit_refs(store):
        if ref in old:
            keys.rewrap(ref)
            result.audit_keys_kept += 1
    marks_ref = _pointed(store, sources_mac_key_pointer())  # the sources marks' MACs are in their names
    if marks_ref in old:
        keys.rewrap(marks_ref)
    for ref in sorted(keys.wrapped_by(old_kek)):
        store.delete(keys.key_of(ref))
        result.old_keys_deleted += 1
    crash_point("reencrypt-swept")
    return result


def _list(store: Store, kind: str) -> list[str]:
    if kind == "records":
        return [k for k in store.list(RECORDS_PREFIX) if parse_record_key(k) is not None]
    if kind == "labels":
        return [k for k in store.list(LABELS_PREFIX) if parse_label_key(k) is not None]
    if kind == "catalog entries":
        return [k for k in store.list(VIDEOS_PREFIX) if parse_video_key(k) is not None]
    if kind == "stale marks":
        return [k for k in store.list(STALE_PREFIX) if k.endswith(".json")]
    return [k for k in store.list(_SEALED[kind]) if k.endswith(".bin")]


def _one(ws, kind: str, key: str, old: set[str], rewritten: dict[str, str]) -> bool:
    """Re-encrypt one object if a data key of the old KEK protects it; whether it did."""
    from faceid_jobs.identity.labels import read_labels, write_labels
    from faceid_jobs.records.parquet import parquet_to_table, table_to_parquet

    store, keys = ws.store, ws.keys
    try:
        raw = store.get(key)
    except KeyError:
        return False  # deleted meanwhile
    if kind in ("records", "labels"):
        if not key_refs(raw) & old:
            return False
        if kind == "records":
            data = table_to_parquet(parquet_to_table(raw, key, None, ws.cipher), ws.cipher, key=key)
            store.put(key, data)
            rewritten[key] = hashlib.sha256(data).hexdigest()
        else:
            write_labels(ws, key, read_labels(ws, key))
        return True
    if kind in ("catalog entries", "stale marks"):
        if named_mac_key(raw) not in old:
            return False
        domain, fmt, what = _envelope(kind)
        body = open_sealed_json(keys, domain, key, raw, fmt, what)
        store.put(key, seal_json(keys, domain, key, body, fmt))
        return True
    header, _ = read_header(io.BytesIO(raw), key)
    ref = header.fields.get("key_ref")
    if ref not in old:
        return False
    plain = open_sealed(raw, lambda _header: keys.get(str(ref), key), key)
    new_ref, dek = keys.create()
    store.put(key, seal(plain, dek, header.fields | {"key_ref": new_ref}, header.segment_size))
    return True


def _envelope(kind: str) -> tuple[str, int, str]:
    if kind == "catalog entries":
        from faceid_jobs.storage.catalog import _DOMAIN, CATALOG_VERSION

        return _DOMAIN, CATALOG_VERSION, "catalog entry"
    from faceid_jobs.index.merge import _STALE_DOMAIN, STALE_FORMAT

    return _STALE_DOMAIN, STALE_FORMAT, "stale mark"


def _index(ws, old: set[str], kind: str, tell: Progress, result: ReencryptResult,
           rewritten: dict[str, str]) -> int:
    """Publish the newest index version again with re-encrypted shards, then collect older versions."""
    from dataclasses import replace

    from faceid_jobs.index.gc import collect_garbage
    from faceid_jobs.index.manifest import commit_manifest, list_versions, load_manifest, manifest_key, now
    from faceid_jobs.index.shard import reencrypt_shard

    store, keys = ws.store, ws.keys
    done = 0
    for _ in range(5):
        versions = list_versions(store)
        if not versions:
            return 0
        newest = versions[-1]
        base = load_manifest(store, keys, newest)
        if named_mac_key(store.get(manifest_key(newest))) not in old and not any(
                ref.key_ref in old for ref in base.shards):
            break  # published by this re-encryption (an earlier run of it)
        shards = []
        for i, ref in enumerate(base.shards):
            if ref.key_ref in old:
                shards.append(reencrypt_shard(store, keys, ref, newest + 1))
                done += 1
            else:
                shards.append(ref)
            tell(kind, i + 1, len(base.shards))
        manifest = replace(base, version=newest + 1, parent=newest, created_at=now(),
                           kek_id=keys.keyring.primary.key_id, note="key re-encryption",
                           parent_mac=base.mac, shards=tuple(shards), mac="",
                           source_hashes=_source_hashes(store, keys, base.source_hashes, rewritten))
        if commit_manifest(store, keys, manifest):
            result.index_version = manifest.version
            crash_point("reencrypt-index")
            break
    else:
        raise IntegrityError(f"{store.uri}: could not publish an index version (concurrent writers)")
    if len(list_versions(store)) > 1:
        result.index_versions_collected = len(collect_garbage(store, keys, keep=1).versions_deleted)
    return done


def _source_hashes(store: Store, keys: DataKeys, hashes: dict[str, str], rewritten: dict[str, str]
                   ) -> dict[str, str]:
    """The manifest's record hashes, with the new hash of each file this re-encryption rewrote.

    Files this run rewrote are known; after a resumed run, a file differing from its recorded hash
    is taken as rewritten by an earlier run only when every data key it names is wrapped by the new
    KEK: under the lease nobody else makes such keys. Any other difference is kept, for
    `index verify` to report.
    """
    primary = keys.keyring.primary.key_id
    out = {}
    for source, recorded in hashes.items():
        if source in rewritten:
            out[source] = rewritten[source]
            continue
        try:
            data = store.get(source)
        except KeyError:
            out[source] = recorded
            continue
        digest = hashlib.sha256(data).hexdigest()
        refs = key_refs(data)
        if digest != recorded and refs and all(_kek_of(keys, ref) == primary for ref in refs):
            out[source] = digest
        else:
            out[source] = recorded
    return out


def _kek_of(keys: DataKeys, ref: str) -> str | None:
    try:
        return keys.kek_of(ref)
    except KeyError:
        return None


def _pointed(store: Store, pointer: str) -> str | None:
    """The ref a key pointer names (`DataKeys.pointed`), None when there is none."""
    try:
        ref = json.loads(store.get(pointer)).get("ref")
    except (KeyError, ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None


def _audit_refs(store: Store) -> set[str]:
    """The audit hashing key (`keys/audit.json`) and every key an audit record names."""
    refs = {ref} if (ref := _pointed(store, audit_name_key_pointer())) else set()
    for key in store.list(AUDIT_PREFIX):
        try:
            ref = json.loads(store.get(key)).get("name_key")
        except (KeyError, ValueError, AttributeError):
            continue
        if isinstance(ref, str):
            refs.add(ref)
    return refs
