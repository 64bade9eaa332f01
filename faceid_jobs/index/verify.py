"""Check a whole store against its index: `faceid-jobs index verify` (I/O via a Store).

Reads everything once: every manifest (authenticated, and the chain of
`parent_mac`s between consecutive versions), the client's high-water mark,
every shard of the newest version (decrypted, checksummed, its vector count),
every record file the newest version indexes (sha256 against the manifest's
`source_hashes`, then decrypted with its binding and rows checked), every
catalog entry, label file and stale mark; and what must be there: no version
missing between the oldest and the newest, a record file for every chunk a
catalog entry lists, a catalog entry for every video the newest version
indexes (`index/coverage.py`). Problems are collected, not raised, so one run
lists them all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.errors import FaceIdError
from faceid_jobs.index.coverage import missing_records, record_files, uncatalogued_sources
from faceid_jobs.index.manifest import Manifest, list_versions, load_version
from faceid_jobs.index.merge import _stale_marks
from faceid_jobs.index.sharded import _load_shard
from faceid_jobs.records.parquet import parquet_to_table
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import load_entry
from faceid_jobs.storage.layout import (
    LABELS_PREFIX,
    VIDEOS_PREFIX,
    manifest_key,
    parse_label_key,
    parse_video_key,
)

__all__ = ["VerifyReport", "verify_index"]


@dataclass
class VerifyReport:
    """What `verify_index` checked and every problem found (one line each, naming the object)."""

    versions: list[int] = field(default_factory=list)
    newest: int | None = None
    shards: int = 0
    records: int = 0
    catalog_entries: int = 0
    labels: int = 0
    stale_marks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check(report: VerifyReport, action, *args):
    try:
        return action(*args)
    except FaceIdError as exc:
        report.problems.append(str(exc))
    except KeyError as exc:
        report.problems.append(f"{exc.args[0] if exc.args else exc}: missing from the store")
    return None


def verify_index(store: Store, keys: DataKeys, cipher) -> VerifyReport:
    """Check the chain, the newest version's shards and records, the catalog and stale marks."""
    report = VerifyReport(versions=list_versions(store))
    mark = keys.watermark.read() if keys.watermark is not None else None
    newest_listed = report.versions[-1] if report.versions else 0
    if mark is not None and newest_listed < mark.version:
        report.problems.append(f"{store.uri}: index rolled back from v{mark.version} to v{newest_listed}")
    manifests: dict[int, Manifest] = {}
    for version in report.versions:
        m = _check(report, load_version, store, keys, version)
        if m is not None:
            manifests[version] = m
    for missing in sorted(set(range(report.versions[0], newest_listed + 1)) - set(report.versions)
                          if report.versions else ()):
        report.problems.append(f"{manifest_key(missing)}: missing between versions {report.versions[0]} and "
                               f"{newest_listed} (a gap in the chain)")
    for version, m in manifests.items():
        parent = manifests.get(version - 1)
        if parent is not None and (m.parent != parent.version or m.parent_mac != parent.mac):
            report.problems.append(f"{manifest_key(version)}: does not follow version "
                                   f"{parent.version} (broken chain)")
        if mark is not None and version == mark.version and m.mac != mark.mac:
            report.problems.append(f"{manifest_key(version)}: not the version {version} "
                                   "this client saw (replaced)")
    if report.versions and report.versions[-1] in manifests:
        newest = manifests[report.versions[-1]]
        report.newest = newest.version
        for ref in newest.shards:
            if _check(report, _load_shard, store, keys, ref, None) is not None:
                report.shards += 1
        for source in sorted(newest.sources):
            expected = newest.source_hashes.get(source)
            data = _check(report, store.get, source)
            if data is None:
                continue
            if expected is None:
                report.problems.append(f"{source}: indexed without a recorded hash")
            elif hashlib.sha256(data).hexdigest() != expected:
                report.problems.append(f"{source}: record file differs from the one indexed "
                                       "(rewritten; a merge re-indexes it only when a stale mark names it)")
            if _check(report, parquet_to_table, data, source, None, cipher) is not None:
                report.records += 1
    entries = []
    for key in store.list(VIDEOS_PREFIX):
        fingerprint = parse_video_key(key)
        if fingerprint is None:
            continue
        entry = _check(report, load_entry, store, fingerprint, keys)
        if entry is not None:
            entries.append(entry)
            report.catalog_entries += 1
    listed = record_files(store)
    embedders = {e.embedder_id for e in entries}
    for key in sorted(k for embedder in embedders for k in missing_records(entries, listed, embedder)):
        report.problems.append(f"{key}: missing, but its video's catalog entry lists the chunk")
    if report.newest is not None:
        for key in uncatalogued_sources(manifests[report.newest].sources, entries):
            report.problems.append(f"{key}: missing, but index version {report.newest} holds the video's faces")
    report.labels = _check_labels(report, store, keys, cipher)
    marks = _check(report, _stale_marks, store, keys)
    report.stale_marks = len(marks[0]) if marks else 0
    return report


def _check_labels(report: VerifyReport, store: Store, keys: DataKeys, cipher) -> int:
    """Decrypt every label file (format, schema, binding to its key); returns how many passed."""
    # Imported here: the identity layer builds on the index, not the other way round.
    from faceid_jobs.identity.labels import read_labels
    from faceid_jobs.workspace import Workspace

    ws = Workspace(store, keys, cipher)
    return sum(_check(report, read_labels, ws, key) is not None
               for key in store.list(LABELS_PREFIX) if parse_label_key(key) is not None)
