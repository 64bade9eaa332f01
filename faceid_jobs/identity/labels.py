"""Identity labels of stored faces, per gallery version, and finding an identity's appearances (I/O via a Store).

Record files stay immutable: labels live beside them, one encrypted Parquet
file per record file and gallery version::

    labels/<gallery version:020d>/<record file key>

holding the rows of the record file that carry a label (`LABEL_COLUMNS`):
``identity`` and ``identity_similarity`` (the best gallery identity at or
above `identity_threshold`, `faceid_jobs.identity.matching`), ``track_identity``
(the identity of the face's track) and what `find` needs to place a face
(frame, time, box, track). A record file with no labelled face gets an empty
label file, so "labelled" and "nothing matched" are told apart. The schema
metadata names the gallery version, the threshold and the embedder.

`relabel` computes labels from the stored embeddings alone (no video is
opened): the record files of the current analysis of every catalogued video
embedded by the gallery's embedder, all of them (`only_missing=False`) or
those without labels for the current gallery version. Once every current
file has labels for the current version, label files of older versions are
deleted. `process` labels its new record files the same way.

`find_identity` reads, for each current record file, its labels of the
current gallery version, or else of the newest older version (reported as
`stale_files`), and merges the faces labelled with the name (face or track)
into appearances (`faceid_jobs.search.appearances.merge_appearances`).
A record file without any label file (not labelled yet, or its label file
deleted by someone with write access to the store) is labelled on the spot
from its embeddings (`unlabelled_files`): a deletion never hides a face.
Missing record files and catalog entries are refused first
(`faceid_jobs.index.coverage`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceid_jobs.config import Settings
from faceid_jobs.crypto.parquet_crypto import key_refs
from faceid_jobs.errors import IntegrityError
from faceid_jobs.identity.gallery import Gallery, UnknownIdentityError, load_gallery, load_gallery_version
from faceid_jobs.identity.matching import GalleryMatrix, track_identities
from faceid_jobs.index.coverage import checked_sources
from faceid_jobs.index.merge import current_sources
from faceid_jobs.records.parquet import ENCRYPTED_MAGIC, bind, check_binding, parquet_to_table
from faceid_jobs.search.appearances import merge_appearances
from faceid_jobs.storage.layout import LABELS_PREFIX, label_key, parse_label_key, parse_record_key
from faceid_jobs.workspace import Workspace

__all__ = [
    "LABELS_PREFIX",
    "LABEL_COLUMNS",
    "Appearance",
    "FindResult",
    "RelabelResult",
    "delete_label_file",
    "delete_labels",
    "find_identity",
    "label_key",
    "label_table",
    "label_versions",
    "read_labels",
    "relabel",
    "write_labels",
]

log = logging.getLogger(__name__)

# 2: bound to the label key (`records.parquet.bind`), exact schema; format 1 files are refused.
LABELS_FORMAT = 2
# Record columns a label file copies (to place a face without reading the record file).
_RECORD_COLUMNS = ["face_id", "frame_index", "timestamp_s", "track_id", "bbox", "embedding"]
LABEL_COLUMNS = ("face_id", "frame_index", "timestamp_s", "track_id", "bbox", "identity",
                 "identity_similarity", "track_identity")
LABEL_SCHEMA = pa.schema([
    pa.field("face_id", pa.string(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("track_id", pa.int64()),
    pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
    pa.field("identity", pa.string()),
    pa.field("identity_similarity", pa.float32()),
    pa.field("track_identity", pa.string()),
])


def label_table(records: pa.Table, matrix: GalleryMatrix, threshold: float, *,
                meta: dict[str, str] | None = None) -> pa.Table:
    """Labels of one record file's faces: the rows with a face or track identity (pure).

    Args:
        records: a record table with at least ``face_id, frame_index,
            timestamp_s, track_id, bbox, embedding``.
        matrix: the gallery's embeddings.
        threshold: lowest similarity that labels a face.
        meta: extra schema metadata (gallery version, threshold, embedder).

    Returns:
        A table of `LABEL_SCHEMA`, rows in record order.
    """
    n = records.num_rows
    if n and len(matrix):
        emb = records.column("embedding").combine_chunks()
        vectors = np.asarray(emb.values.to_numpy(zero_copy_only=False), np.float32).reshape(n, -1)
        names, sims = matrix.label(vectors, threshold)
    else:
        names, sims = [None] * n, [None] * n
    tracks = records.column("track_id").to_pylist() if n else []
    per_track = track_identities(tracks, names, sims)
    keep = [i for i in range(n) if names[i] is not None or per_track[i] is not None]
    rows = records.select(["face_id", "frame_index", "timestamp_s", "track_id", "bbox"]).take(
        pa.array(keep, pa.int64()))
    table = pa.Table.from_arrays(
        [rows.column("face_id").cast(pa.string()), rows.column("frame_index").cast(pa.int64()),
         rows.column("timestamp_s").cast(pa.float64()), rows.column("track_id").cast(pa.int64()),
         rows.column("bbox").cast(pa.list_(pa.float32(), 4)),
         pa.array([names[i] for i in keep], pa.string()),
         pa.array([sims[i] for i in keep], pa.float32()),
         pa.array([per_track[i] for i in keep], pa.string())],
        schema=LABEL_SCHEMA)
    info = {"faceid.labels_format": str(LABELS_FORMAT), **(meta or {})}
    return table.replace_schema_metadata({k.encode(): str(v).encode() for k, v in info.items()})


def write_labels(ws: Workspace, key: str, table: pa.Table) -> None:
    """Encrypt a label table bound to its key (so it cannot be moved to another record file)."""
    ws.store.put(key, ws.cipher.encrypt(bind(table, key), compression="zstd"))


def read_labels(ws: Workspace, key: str) -> pa.Table:
    """One label file (decrypted, format, schema and binding checked).

    Raises:
        KeyError: no such file.
        IntegrityError: damaged, undecryptable, of an unknown format or
            schema, or bound to another key (moved from another record file
            or gallery version).
    """
    data = ws.store.get(key)
    if data[:4] != ENCRYPTED_MAGIC:
        raise IntegrityError(f"{key}: label file is not encrypted")
    try:
        pf = ws.cipher.open(data)
        schema = pf.schema_arrow
        fmt = (schema.metadata or {}).get(b"faceid.labels_format")
        if fmt != str(LABELS_FORMAT).encode():
            raise IntegrityError(f"{key}: label format {fmt!r} is not supported")
        if not schema.equals(LABEL_SCHEMA, check_metadata=False):
            raise IntegrityError(f"{key}: label file does not have the label schema")
        check_binding(schema, key, "label file")
        return pf.read()
    except IntegrityError as exc:
        message = str(exc)
        raise IntegrityError(message if message.startswith(key) else f"{key}: {message}") from None
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{key}: damaged or undecryptable label file ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class RelabelResult:
    """What a relabel did; `faces_per_second` counts every face read, labelled or not."""

    gallery_version: int
    identities: int
    files: int
    files_skipped: int
    faces: int
    labelled_faces: int
    seconds: float
    label_versions_deleted: int = 0

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"faces_per_second": round(self.faces_per_second, 1)}


def _existing_labels(ws: Workspace) -> dict[str, dict[int, str]]:
    """record key → {gallery version: label key} of every label file in the store."""
    found: dict[str, dict[int, str]] = {}
    for key in ws.store.list(LABELS_PREFIX):
        parsed = parse_label_key(key)
        if parsed is not None:
            found.setdefault(parsed[1], {})[parsed[0]] = key
    return found


def relabel(
    ws: Workspace,
    embedder_id: str,
    threshold: float,
    *,
    gallery: Gallery | None = None,
    only_missing: bool = True,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> RelabelResult:
    """Label every current record file's faces with the gallery (no video decoding).

    Args:
        ws: the store and keys.
        embedder_id: the records (and gallery identities) of this embedder are labelled.
        threshold: `identity_threshold`.
        gallery: the gallery to use (default: the newest, loaded here).
        only_missing: skip record files already labelled for this gallery version.
        workers: record files read and labelled in parallel.
        progress: called with (files done, files to do).

    Returns:
        Counts and timing; nothing is written when nothing was ever enrolled.
    """
    started = time.perf_counter()
    gallery = gallery if gallery is not None else load_gallery(ws)
    if gallery.version == 0:
        return RelabelResult(0, 0, 0, 0, 0, 0, round(time.perf_counter() - started, 3))
    matrix = gallery.matrix(embedder_id)
    sources = current_sources(ws.store, embedder_id, ws.keys)
    existing = _existing_labels(ws)
    todo = sorted(k for k in sources if not (only_missing and gallery.version in existing.get(k, {})))
    meta = {"faceid.gallery_version": str(gallery.version), "faceid.identity_threshold": repr(threshold),
            "faceid.embedder_id": embedder_id}

    def one(key: str) -> tuple[int, int]:
        records = parquet_to_table(ws.store.get(key), key, _RECORD_COLUMNS, cipher=ws.cipher)
        table = label_table(records, matrix, threshold, meta=meta)
        write_labels(ws, label_key(gallery.version, key), table)
        return records.num_rows, int(table.column("identity").is_valid().to_numpy(zero_copy_only=False).sum())

    faces = labelled = done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, k in pool.map(one, todo):
            faces += n
            labelled += k
            done += 1
            if progress:
                progress(done, len(todo))
    deleted = _drop_old_labels(ws, gallery.version, embedder_id)
    return RelabelResult(gallery.version, len(matrix), len(todo), len(sources) - len(todo), faces, labelled,
                         round(time.perf_counter() - started, 3), deleted)


def _drop_old_labels(ws: Workspace, version: int, embedder_id: str) -> int:
    """Once every current record file has labels of `version`, delete older label versions."""
    sources = current_sources(ws.store, embedder_id, ws.keys)
    existing = _existing_labels(ws)
    if any(version not in existing.get(k, {}) for k in sources):
        return 0
    old = set()
    for versions in existing.values():
        for v, key in versions.items():
            if v < version:
                old.add(v)
                delete_label_file(ws, key)
    return len(old)


def delete_label_file(ws: Workspace, key: str) -> None:
    """Delete one label file and its data keys: a kept copy of it (a backup) no longer decrypts.

    The keys go first: a crash in between leaves an unreadable label file
    (deleted again by the next try), never a live key to a deleted file.
    """
    try:
        data = ws.store.get(key)
    except KeyError:
        return
    for ref in key_refs(data):
        ws.store.delete(ws.keys.key_of(ref))
    ws.store.delete(key)


def delete_labels(ws: Workspace, record_keys: Iterable[str]) -> int:
    """Delete the label files (of every gallery version) of these record files, with their data keys."""
    wanted = set(record_keys)
    count = 0
    for record, versions in _existing_labels(ws).items():
        if record in wanted:
            for key in versions.values():
                delete_label_file(ws, key)
                count += 1
    return count


@dataclass(frozen=True)
class Appearance:
    """An identity's appearance in one video: a time range and its best face."""

    video: str
    start_s: float
    end_s: float
    timestamp_s: float
    frame: int
    similarity: float
    bbox: tuple[float, float, float, float]
    track_id: int | None
    face_id: str
    faces: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"bbox": list(self.bbox)}


@dataclass(frozen=True)
class FindResult:
    identity: str
    gallery_version: int
    appearances: tuple[Appearance, ...]
    files: int
    stale_files: int
    unlabelled_files: int

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "gallery_version": self.gallery_version,
                "appearances": [a.to_json() for a in self.appearances],
                "labels": {"files": self.files, "stale_files": self.stale_files,
                           "unlabelled_files": self.unlabelled_files}}


def find_identity(ws: Workspace, name: str, *, gap_s: float = 1.0, gallery_version: int | None = None,
                  embedder_id: str | None = None, threshold: float = Settings.identity_threshold,
                  workers: int = 4) -> FindResult:
    """Where an enrolled identity appears, from the stored labels.

    Appearances are sorted by video, then start time. Faces labelled with
    the name, and faces of tracks labelled with it, count. The record files
    read are checked against the catalog and the index first
    (`index.coverage.checked_sources`); a record file with no label file at
    all (not labelled yet, or its label file deleted) is labelled here from
    its stored embeddings with the gallery and `threshold`, as `relabel`
    would, so a missing label file never hides an appearance.

    Raises:
        UnknownIdentityError: the name is not enrolled in the current gallery.
        IntegrityError: a record file, label file, catalog entry or gallery
            version is missing, damaged or moved.
    """
    manifest = load_gallery_version(ws, gallery_version)
    version = manifest.version if manifest else 0
    if manifest is None or name not in manifest.identities:
        raise UnknownIdentityError(f"{name}: not enrolled (see `faceid-jobs identities list`)")
    embedder = embedder_id or manifest.identities[name].embedder_id
    sources = checked_sources(ws.store, ws.keys, embedder)
    existing = _existing_labels(ws)
    chosen: dict[str, str] = {}
    unlabelled: list[str] = []
    stale = 0
    for record in sorted(sources):
        versions = [v for v in existing.get(record, {}) if v <= version]
        if not versions:
            unlabelled.append(record)
            continue
        best = max(versions)
        stale += best < version
        chosen[record] = existing[record][best]
    label_now = _labeller(ws, version, embedder, threshold) if unlabelled else None

    def rows_of(record: str) -> list[dict[str, Any]]:
        table = read_labels(ws, chosen[record]) if record in chosen else label_now(record)
        if not table.num_rows:
            return []
        mask = pc.or_kleene(pc.equal(table.column("identity"), name),
                                    pc.equal(table.column("track_identity"), name))
        picked = table.filter(pc.fill_null(mask, False)).to_pylist()
        fingerprint = (parse_record_key(record) or ("", "", 0))[1]
        for row in picked:
            row["video"] = sources[record]
            row["fingerprint"] = fingerprint
        return picked

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = [r for part in pool.map(rows_of, [*chosen, *unlabelled]) for r in part]
    if stale:
        log.warning("%d of %d record files are labelled with an older gallery version; run `faceid-jobs relabel`",
                    stale, len(sources))
    return FindResult(name, version, tuple(_merge(rows, name, gap_s)), len(sources), stale, len(unlabelled))


def _labeller(ws: Workspace, version: int, embedder_id: str, threshold: float) -> Callable[[str], pa.Table]:
    """Labels of one record file computed now, with gallery `version` (what `relabel` would store)."""
    matrix = load_gallery(ws, version).matrix(embedder_id)

    def label_now(key: str) -> pa.Table:
        try:
            data = ws.store.get(key)
        except KeyError:
            raise IntegrityError(f"{key}: record file deleted while it was read") from None
        return label_table(parquet_to_table(data, key, _RECORD_COLUMNS, cipher=ws.cipher), matrix, threshold)

    return label_now


def _merge(rows: list[dict[str, Any]], name: str, gap_s: float) -> list[Appearance]:
    """Faces → one group per (video, track) spanning its faces → appearances joined within `gap_s`."""
    groups: dict[tuple[str, Any], list[int]] = {}
    for i, row in enumerate(rows):
        track = ("t", row["track_id"]) if row["track_id"] is not None else ("f", i)
        groups.setdefault((row["fingerprint"], track), []).append(i)
    reps, videos, tracks, starts, ends, sims, members = [], [], [], [], [], [], []
    for (fingerprint, _), idx in groups.items():
        times = [rows[i]["timestamp_s"] for i in idx]
        own = [i for i in idx if rows[i]["identity"] == name] or idx
        best = max(own, key=lambda i: (rows[i]["identity_similarity"] or 0.0, -rows[i]["timestamp_s"]))
        reps.append(best)
        videos.append(fingerprint)
        tracks.append(None)  # one group per entry already
        starts.append(min(times))
        ends.append(max(times))
        sims.append(rows[best]["identity_similarity"] if rows[best]["identity"] == name else 0.0)
        members.append(len(idx))
    spans = merge_appearances(videos, tracks, starts, ends, sims, gap_s=gap_s)
    out = []
    for span in spans:
        best = reps[span.row]
        row = rows[best]
        out.append(Appearance(
            video=row["video"], start_s=round(span.start_s, 3), end_s=round(span.end_s, 3),
            timestamp_s=round(float(row["timestamp_s"]), 3), frame=int(row["frame_index"]),
            similarity=round(float(sims[span.row]), 4), bbox=tuple(round(float(v), 1) for v in row["bbox"]),
            track_id=row["track_id"], face_id=row["face_id"], faces=sum(members[r] for r in span.rows)))
    out.sort(key=lambda a: (a.video, a.start_s))
    return out


def label_versions(ws: Workspace) -> list[int]:
    """Gallery versions that label files exist for, ascending (for reports and tests)."""
    return sorted({v for versions in _existing_labels(ws).values() for v in versions})

