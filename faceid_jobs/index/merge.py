"""Merge stored face records into a new index version (I/O via a Store).

Incremental and optimistic, after Delta Lake / Iceberg:

1. read the newest manifest (the base) and the current record files of every
   catalogued video;
2. keep base shards whose sources are all still current and not marked
   stale (below); record files in no kept shard are pending; if more than
   `max_small` small shards would remain, they are compacted (their sources become pending too);
3. build new shards from the pending records (streamed file by file), each
   written under a fresh id, never over an existing object;
4. publish version base+1 with put-if-absent. If another merge published it
   first, start again from 1 on the new base (bounded); shards this attempt
   wrote and nobody references are left for `index gc`.

When nothing is pending, nothing is stale and no compaction is due, no
version is published: a re-run changes nothing in the store. When the base
indexes exactly the record files the store lists, none marked stale, that is
known before step 1 reads the catalog (`_covers_exactly`): a nightly re-check
of an unchanged archive then costs a listing of `records/`, not a catalog
read per video.

**Stale marks.** A record file rewritten under its own key (`faceid-jobs
forget --purge-appearances` deletes faces from it) looks current to step 2.
Whoever rewrites one calls `mark_stale` afterwards: a small object
``index/stale/<time>-<uuid>.json`` naming the record keys. Every merge drops
the shards holding a marked source, so those records are indexed again from
their new content, and deletes the marks it read once its version is
published (a mark written meanwhile stays for the next merge). A mark can be
deleted by someone with write access to the store; with ``rehash``
(`faceid-jobs index build`) the merge also compares every covered record
file with the sha256 the base version recorded and treats a difference as a
mark.

**Pending forgets.** While a forget is pending (`identity/forget_filter.py`),
each attempt leaves its person's faces out of the records it indexes, and
lists the journal again before publishing: a forget that started meanwhile
makes it merge again. So footage stored while a forget runs never brings the
person back into the index.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.mac import open_sealed_json, seal_json
from faceid_jobs.errors import IntegrityError, StoreTransientError
from faceid_jobs.index.coverage import record_files, source_map
from faceid_jobs.index.manifest import Manifest, commit_manifest, list_versions, load_manifest, now
from faceid_jobs.index.shard import IndexParams, ShardRef, build_faiss, write_shard
from faceid_jobs.records import META_COLUMNS
from faceid_jobs.records.parquet import parquet_to_table
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.storage.layout import STALE_PREFIX, stale_key

__all__ = ["STALE_PREFIX", "MergeResult", "RowSelector", "all_rows", "changed_sources", "current_sources", "mark_stale",
           "merge_index"]

log = logging.getLogger(__name__)

STALE_FORMAT = 2
_STALE_DOMAIN = "faceid-stale/v2"

# Turns one record table into (vectors (n, D) float32, metadata rows).
RowSelector = Callable[[pa.Table], tuple[np.ndarray, pa.Table]]


def all_rows(table: pa.Table) -> tuple[np.ndarray, pa.Table]:
    """Every face row goes into the index (index_by = "face")."""
    emb = table.column("embedding").combine_chunks()
    dim = emb.type.list_size
    vectors = np.asarray(emb.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
    return vectors, table.select([c for c in META_COLUMNS if c in table.column_names])


@dataclass(frozen=True)
class MergeResult:
    """What a merge did."""

    version: int | None
    published: bool
    shards_added: int
    shards_kept: int
    vectors: int
    attempts: int


def current_sources(store: Store, embedder_id: str, keys: DataKeys, *,
                    listed: set[str] | None = None) -> dict[str, str]:
    """Record file key → the video's current URI, for videos embedded by `embedder_id` (entries authenticated).

    One listing of `records/` for the whole archive (`listed`, when the caller
    has it), not one per video: on S3 a re-check of an unchanged archive then
    costs a few list pages, not a request per video.
    """
    entries = list_entries(store, keys)
    for entry in entries:
        if entry.embedder_id != embedder_id:
            log.warning("%s: analysed with embedder %s, not %s; not indexed",
                        entry.uri, entry.embedder_id, embedder_id)
    if not any(e.embedder_id == embedder_id for e in entries):
        return {}
    return source_map(entries, record_files(store) if listed is None else listed, embedder_id)


def mark_stale(store: Store, keys: DataKeys, sources: Iterable[str], reason: str = "") -> str | None:
    """Tell the next merges that these record files changed under their keys; returns the mark's key.

    The mark is authenticated (`crypto/mac.py`): one forged by someone without the key is refused.
    """
    records = sorted(set(sources))
    if not records:
        return None
    stamp = now().replace(":", "").replace("-", "").replace("+0000", "Z")
    key = stale_key(stamp, uuid.uuid4().hex)
    body = {"sources": records, "reason": reason, "created_at": now()}
    store.put(key, seal_json(keys, _STALE_DOMAIN, key, body, STALE_FORMAT))
    return key


def _stale_marks(store: Store, keys: DataKeys) -> tuple[list[str], set[str]]:
    """(mark keys, record keys they name); every mark authenticated."""
    marks, sources = [], set()
    for key in store.list(STALE_PREFIX):
        try:
            raw = store.get(key)
        except KeyError:
            continue  # deleted by a merge meanwhile
        body = open_sealed_json(keys, _STALE_DOMAIN, key, raw, STALE_FORMAT, "stale mark")
        named = body.get("sources")
        if not isinstance(named, list) or not all(isinstance(k, str) for k in named):
            raise IntegrityError(f"{key}: damaged stale mark")
        sources.update(named)
        marks.append(key)
    return marks, sources


def merge_index(
    store: Store,
    keys: DataKeys,
    embedder_id: str,
    *,
    cipher=None,
    select: RowSelector = all_rows,
    index_by: str = "face",
    params: IndexParams | None = None,
    max_small: int = 8,
    attempts: int = 5,
    rehash: bool = False,
) -> MergeResult:
    """Publish a new index version covering every current record file.

    Args:
        store: the store holding records, catalog and index.
        keys: data keys (wrap new shard and manifest keys).
        embedder_id: only videos embedded by this model are indexed.
        cipher: decrypts encrypted record files.
        select: which rows of a record table become vectors.
        index_by: recorded in the manifest ("face" or "track").
        params: shard index parameters.
        max_small: more small shards than this are compacted into one.
        attempts: tries before giving up on concurrent commits.
        rehash: read every record file the base version covers and treat
            one whose sha256 differs from the base's `source_hashes` as
            rewritten (as if a stale mark named it): a stale mark deleted by
            someone with write access then changes nothing. Costs a read of
            every record file; `faceid-jobs index build` does it.

    Raises:
        StoreTransientError: the commit kept losing to concurrent merges.
    """
    params = params or IndexParams()
    for attempt in range(1, attempts + 1):
        versions = list_versions(store)
        base = load_manifest(store, keys, versions[-1]) if versions else None
        version = (versions[-1] if versions else 0) + 1
        marks, rewritten = _stale_marks(store, keys)
        forgets, drop = _forget_filter(store, keys, cipher)
        # A base built with another embedder or row selection is rebuilt, not extended.
        compatible = base is not None and base.embedder_id == embedder_id and base.index_by == index_by
        listed = record_files(store)
        if base and compatible and not rewritten and not rehash and _covers_exactly(base, listed, params, max_small):
            # Nothing to merge, and the catalog (a read per video) is not needed to tell.
            return MergeResult(base.version, False, 0, len(base.shards), base.vectors, attempt)
        sources = current_sources(store, embedder_id, keys, listed=listed)
        if rehash and compatible:
            rewritten |= changed_sources(store, base, sources.keys())
        base_shards = list(base.shards) if compatible else []
        kept = [s for s in base_shards if set(s.sources) <= sources.keys() and not rewritten & set(s.sources)]
        stale = len(base_shards) - len(kept)
        small = [s for s in kept if s.vectors < params.shard_max // 4]
        if len(small) > max_small:
            kept = [s for s in kept if s not in small]
        empty = sorted((set(base.empty_sources) & sources.keys()) - rewritten) if compatible else []
        covered = {src for s in kept for src in s.sources} | set(empty)
        pending = sorted(sources.keys() - covered)
        unchanged = compatible and len(kept) == len(base_shards) and not stale
        if base and unchanged and not pending:
            return MergeResult(base.version, False, 0, len(kept), base.vectors, attempt)
        new: list[ShardRef] = []
        old_hashes = base.source_hashes if compatible else {}
        hashes = {k: old_hashes[k] for k in covered if k in old_hashes}
        for item in _build_shards(store, keys, pending, sources, version, cipher, select, params, hashes, drop):
            if isinstance(item, ShardRef):
                new.append(item)
            else:
                empty.append(item)
        shards = tuple(kept + new)
        dims = {s.dim for s in shards}
        if len(dims) > 1:
            raise IntegrityError(f"{store.uri}: records of one embedder have dimensions {sorted(dims)}")
        manifest = Manifest(
            version=version,
            parent=base.version if base else None,
            created_at=now(),
            embedder_id=embedder_id,
            dim=dims.pop() if dims else 0,
            index_by=index_by,
            shards=shards,
            kek_id=keys.keyring.primary.key_id,
            empty_sources=tuple(sorted(empty)),
            parent_mac=base.mac if base else "",
            source_hashes=hashes,
        )
        if _new_forgets(store, forgets):
            log.info("a forget started during the merge; merging again without its person")
            continue
        if commit_manifest(store, keys, manifest):
            for mark in marks:
                store.delete(mark)
            return MergeResult(version, True, len(new), len(kept), manifest.vectors, attempt)
        log.info("index version %d was published concurrently; merging again", version)
    raise StoreTransientError(f"{store.uri}: could not publish an index version after {attempts} attempts "
                     "(concurrent merges); run the merge again")


def _covers_exactly(base: Manifest, listed: set[str], params: IndexParams, max_small: int) -> bool:
    """Whether `base` indexes exactly the record files in the store and no compaction is due.

    Then every current record file is indexed whatever the catalog says: a
    record file appears for each new or re-analysed video (a new analysis or
    fingerprint is a new key), `forget` deletes or rewrites (stale marks)
    the files it touches, and files of an analysis no longer current stay
    outside the index, so they would make the sets differ.
    """
    covered = {src for shard in base.shards for src in shard.sources} | set(base.empty_sources)
    small = [s for s in base.shards if s.vectors < params.shard_max // 4]
    return covered == listed and len(small) <= max_small


def changed_sources(store: Store, base: Manifest, current: Iterable[str], workers: int = 8) -> set[str]:
    """The record files `base` covers (of `current`) whose sha256 is not the one it recorded."""
    covered = sorted(base.sources & set(current))

    def differs(key: str) -> bool:
        try:
            data = store.get(key)
        except KeyError:
            return False  # deleted meanwhile: no longer current, the merge drops it
        return hashlib.sha256(data).hexdigest() != base.source_hashes.get(key)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        changed = {key for key, bad in zip(covered, pool.map(differs, covered), strict=True) if bad}
    for key in sorted(changed):
        log.warning("%s: differs from the record file index version %d holds, with no stale mark naming it; "
                    "indexed again", key, base.version)
    return changed


def _forget_filter(store: Store, keys: DataKeys,
                   cipher) -> tuple[frozenset[str], Callable[[pa.Table], pa.Table] | None]:
    # Imported here: the identity layer builds on the index, not the other way round.
    from faceid_jobs.identity.forget_filter import forget_filter
    from faceid_jobs.workspace import Workspace

    return forget_filter(Workspace(store, keys, cipher))


def _new_forgets(store: Store, seen: frozenset[str]) -> bool:
    from faceid_jobs.identity.forget_filter import new_forgets

    return new_forgets(store, seen)


def _build_shards(store: Store, keys: DataKeys, pending: Iterable[str], uris: dict[str, str],
                  version: int, cipher, select: RowSelector, params: IndexParams,
                  hashes: dict[str, str], drop: Callable[[pa.Table], pa.Table] | None = None
                  ) -> Iterable[ShardRef | str]:
    """Shards of the pending records; record keys with no rows are yielded as plain keys.

    The sha256 of every record file read goes into `hashes` (the manifest's `source_hashes`).
    """
    vectors: list[np.ndarray] = []
    metas: list[pa.Table] = []
    srcs: list[str] = []
    count = 0

    def flush() -> ShardRef:
        nonlocal vectors, metas, srcs, count
        index, kind = build_faiss(np.ascontiguousarray(np.concatenate(vectors), np.float32), params)
        meta = pa.concat_tables(metas)
        ref = write_shard(store, keys, index, meta, kind=kind, created_version=version, sources=tuple(srcs))
        vectors, metas, srcs, count = [], [], [], 0
        return ref

    for key in pending:
        data = store.get(key)
        hashes[key] = hashlib.sha256(data).hexdigest()
        table = parquet_to_table(data, key, cipher=cipher)
        if drop is not None:
            table = drop(table)  # a pending forget's person
        vec, meta = select(table)
        if not len(vec):
            yield key
            continue
        srcs.append(key)
        # Show the video where it was last seen, not where it was processed.
        uri = pa.array([uris[key]] * meta.num_rows, pa.string())
        meta = meta.set_column(meta.schema.get_field_index("video_uri"), "video_uri", uri)
        vectors.append(vec)
        metas.append(meta)
        count += len(vec)
        if count >= params.shard_max:
            yield flush()
    if srcs:
        yield flush()
