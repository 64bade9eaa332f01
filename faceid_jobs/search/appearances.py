"""What goes into the index from a chunk's records, and hits merged into appearances (pure).

**Index rows.** `index_rows` turns one chunk's record table into index
vectors and metadata rows:

- ``index_by = "face"``: every face row (that passes the gates) is a vector.
- ``index_by = "track"`` (default): a track contributes
  ``k = min(per_track, 1 + ⌊(end_s − start_s) / vector_seconds⌋)`` vectors:
  the track is cut into `k` consecutive stretches of its faces and the
  best-quality face of each stretch is indexed. Short tracks get one vector,
  long ones a few from different moments (so different poses), never one per
  frame. Measured on the Friends clip at 4 fps in 10-s chunks (225 faces, 29
  tracks, 17 of them holding a face that matches a portrait at cosine ≥ 0.4),
  as vectors / tracks found by their portrait / mean best similarity:
  every face 225 / 17 / 0.653; best face per track 29 / 17 / 0.585; 3 best
  faces per track 76 / 17 / 0.623; quality-weighted mean embedding 29 / 16 /
  0.656 (it loses Monica in shot 6, whose one matching face, 0.41, sits
  among profiles); this rule 41 / 17 / 0.629. The mean scores typical tracks
  higher but finds fewer, so single faces are indexed.

Both modes add ``start_s`` and ``end_s`` to the metadata: in track mode the
track's first and last face, in face mode null (which is how a search tells
the two kinds of index apart). In track mode the
``liveness`` of a row is the mean P(live) of its whole track, a steadier
estimate than one frame; ``timestamp_s``, ``bbox`` and ``quality`` stay those
of the indexed face. Gates: ``min_liveness`` drops faces (tracks, in track
mode) whose liveness is below it, ``min_quality`` drops faces below it before
a track's faces are chosen; a missing score fails a gate above 0. Records
without track ids (older analyses) count each face as its own track.

**Appearances.** `merge_appearances` groups search hits by track and joins
groups of the same video at most `gap_s` apart (this also rejoins a
person's track split at a chunk boundary), keeping the most similar hit as
the appearance's representative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa

from faceid_jobs.config import Settings
from faceid_jobs.records import META_COLUMNS

__all__ = [
    "INDEX_BY",
    "INDEX_META_COLUMNS",
    "AppearanceSpan",
    "empty_meta",
    "index_rows",
    "merge_appearances",
    "row_selector",
    "settings_selector",
]

INDEX_BY = ("face", "track")
# Metadata of one index row: the record's columns a search needs, plus the
# time span of the appearance the row stands for.
INDEX_META_COLUMNS = (*META_COLUMNS, "start_s", "end_s")


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A nullable numeric column as float64 with NaN for nulls."""
    col = table.column(name).combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False), np.float64)


def _vectors(table: pa.Table) -> np.ndarray:
    emb = table.column("embedding").combine_chunks()
    dim = emb.type.list_size
    return np.asarray(emb.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)


def _passes(values: np.ndarray, minimum: float) -> np.ndarray:
    """values ≥ minimum; a missing value (NaN) passes only a gate of 0."""
    if minimum <= 0:
        return np.ones(len(values), bool)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(values, nan=-np.inf) >= minimum


def empty_meta() -> pa.Table:
    """Index metadata with no rows (the schema of `index_rows`' second result)."""
    from faceid_jobs.records import record_schema

    base = record_schema(1).empty_table().select(list(META_COLUMNS))
    return base.append_column("start_s", pa.array([], pa.float64())).append_column(
        "end_s", pa.array([], pa.float64()))


def index_rows(
    table: pa.Table,
    index_by: str = "track",
    per_track: int = 3,
    *,
    vector_seconds: float = 2.5,
    min_liveness: float = 0.0,
    min_quality: float = 0.0,
) -> tuple[np.ndarray, pa.Table]:
    """The vectors and metadata rows one chunk's records contribute to the index.

    Args:
        table: one record file's rows (schema v1).
        index_by: "face" (every face) or "track" (a few faces per track).
        per_track: most vectors per track.
        vector_seconds: a track gets one more vector per this many seconds,
            up to `per_track`.
        min_liveness: leave out faces (tracks) whose P(live) is lower.
        min_quality: leave out faces whose quality is lower.

    Returns:
        (vectors (m, D) float32, metadata (m rows, `INDEX_META_COLUMNS`)),
        rows in the same order.

    Raises:
        ValueError: unknown `index_by`, `per_track` < 1 or `vector_seconds` ≤ 0.

    Example:
        >>> vectors, meta = index_rows(table, "track", 3)  # doctest: +SKIP
        >>> meta.column_names[-2:]  # doctest: +SKIP
        ['start_s', 'end_s']
    """
    if index_by not in INDEX_BY:
        raise ValueError(f"index_by must be face or track, got {index_by!r}")
    if per_track < 1:
        raise ValueError(f"per_track must be >= 1, got {per_track}")
    if vector_seconds <= 0:
        raise ValueError(f"vector_seconds must be > 0, got {vector_seconds}")
    vectors = _vectors(table)
    n = table.num_rows
    if n == 0:
        return vectors, empty_meta()
    times = _floats(table, "timestamp_s")
    liveness = _floats(table, "liveness")
    quality = _floats(table, "quality")
    ok_quality = _passes(quality, min_quality)
    if index_by == "face":
        rows = np.flatnonzero(_passes(liveness, min_liveness) & ok_quality)
        return _take(table, vectors, rows, None, None, None)

    tracks = table.column("track_id").combine_chunks()
    valid = np.asarray(tracks.is_valid().to_numpy(zero_copy_only=False), bool)
    tid = np.asarray(tracks.fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    # A face without a track id is a track of its own: key it by -(row + 1).
    keys = np.where(valid, tid, -(np.arange(n, dtype=np.int64) + 1))
    det = _floats(table, "det_score")
    rank_quality = np.nan_to_num(quality, nan=-1.0)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    picked: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    live_of: list[float] = []
    for group in np.argsort(first, kind="stable"):  # tracks in order of first row
        members = np.flatnonzero(inverse == group)
        members = members[np.argsort(times[members], kind="stable")]
        live = liveness[members]
        track_live = float(np.nanmean(live)) if np.isfinite(live).any() else float("nan")
        if not _passes(np.array([track_live]), min_liveness)[0]:
            continue
        start, end = float(times[members].min()), float(times[members].max())
        candidates = members[ok_quality[members]]
        if not len(candidates):
            continue
        k = min(per_track, 1 + int((end - start) // vector_seconds), len(candidates))
        for stretch in np.array_split(candidates, k):
            # Best quality, then detection score, then earliest.
            order = np.lexsort((-det[stretch], -rank_quality[stretch]))
            picked.append(int(stretch[order[0]]))
            starts.append(start)
            ends.append(end)
            live_of.append(track_live)
    rows = np.asarray(picked, np.int64)
    return _take(table, vectors, rows, np.asarray(starts), np.asarray(ends), np.asarray(live_of))


def _take(
    table: pa.Table,
    vectors: np.ndarray,
    rows: np.ndarray,
    start_s: np.ndarray | None,
    end_s: np.ndarray | None,
    liveness: np.ndarray | None,
) -> tuple[np.ndarray, pa.Table]:
    idx = pa.array(rows, pa.int64())
    meta = table.select(list(META_COLUMNS)).take(idx)
    if liveness is not None:
        live = pa.array(liveness.astype(np.float32), pa.float32(), mask=~np.isfinite(liveness))
        meta = meta.set_column(meta.schema.get_field_index("liveness"), meta.schema.field("liveness"), live)
    for name, values in (("start_s", start_s), ("end_s", end_s)):
        column = pa.nulls(len(rows), pa.float64()) if values is None else pa.array(values, pa.float64())
        meta = meta.append_column(name, column)
    return np.ascontiguousarray(vectors[rows], np.float32), meta


def row_selector(
    index_by: str = "track",
    per_track: int = 3,
    *,
    vector_seconds: float = 2.5,
    min_liveness: float = 0.0,
    min_quality: float = 0.0,
) -> Callable[[pa.Table], tuple[np.ndarray, pa.Table]]:
    """`index_rows` with its settings bound: table → (vectors, metadata).

    Example:
        >>> select = row_selector(s.index_by, s.per_track)  # doctest: +SKIP
    """
    if index_by not in INDEX_BY:
        raise ValueError(f"index_by must be face or track, got {index_by!r}")
    return partial(index_rows, index_by=index_by, per_track=per_track, vector_seconds=vector_seconds,
                   min_liveness=min_liveness, min_quality=min_quality)


def settings_selector(settings: Settings) -> Callable[[pa.Table], tuple[np.ndarray, pa.Table]]:
    """`row_selector` for the index settings of `settings` (index_by, per_track,
    track_vector_seconds, min_liveness, min_quality).

    Example:
        >>> merge_index(..., select=settings_selector(s), index_by=s.index_by)  # doctest: +SKIP
    """
    return row_selector(settings.index_by, settings.per_track, vector_seconds=settings.track_vector_seconds,
                        min_liveness=settings.min_liveness, min_quality=settings.min_quality)


@dataclass(frozen=True)
class AppearanceSpan:
    """Hits of one appearance: `row` is the most similar hit, `rows` all of them."""

    row: int
    start_s: float
    end_s: float
    rows: tuple[int, ...]


def merge_appearances(
    videos: Sequence[str],
    track_ids: Sequence[int | None],
    start_s: Sequence[float | None],
    end_s: Sequence[float | None],
    similarity: Sequence[float],
    *,
    gap_s: float = 1.0,
) -> list[AppearanceSpan]:
    """Merge search hits into appearances, most similar first.

    Hits of the same (video, track) form one group spanning the track's
    ``[start_s, end_s]``; groups of one video that overlap or are at most
    `gap_s` seconds apart are joined.

    Args:
        videos: per hit, the video it is in (fingerprint).
        track_ids: per hit, its track (None: the hit is its own group).
        start_s: per hit, the start of its track (None: unknown, a point).
        end_s: per hit, the end of its track (None: same as start).
        similarity: per hit, cosine similarity to the query.
        gap_s: the longest pause inside one appearance.

    Returns:
        Appearances sorted by their best similarity, descending (ties by
        video, then start time).

    Example:
        >>> spans = merge_appearances(["v", "v", "v"], [1, 1, 2], [0.0, 0.0, 9.0], [3.0, 3.0, 9.5],
        ...                           [0.5, 0.7, 0.6], gap_s=1.0)
        >>> [(s.row, s.start_s, s.end_s) for s in spans]
        [(1, 0.0, 3.0), (2, 9.0, 9.5)]
    """
    n = len(similarity)
    if not (len(videos) == len(track_ids) == len(start_s) == len(end_s) == n):
        raise ValueError("merge_appearances: every per-hit sequence must have the same length")
    sims = [float(s) for s in similarity]
    groups: dict[tuple[str, object], list[int]] = {}
    for i in range(n):
        key = (videos[i], ("track", int(track_ids[i])) if track_ids[i] is not None else ("hit", i))
        groups.setdefault(key, []).append(i)
    by_video: dict[str, list[tuple[float, float, list[int]]]] = {}
    for (video, _), rows in groups.items():
        lo = [start_s[r] for r in rows if start_s[r] is not None]
        hi = [end_s[r] if end_s[r] is not None else start_s[r] for r in rows]
        hi = [h for h in hi if h is not None]
        start = float(min(lo)) if lo else float("nan")
        end = float(max(hi)) if hi else start
        by_video.setdefault(video, []).append((start, end, rows))
    spans: list[tuple[str, AppearanceSpan]] = []
    for video, items in by_video.items():
        timed = sorted((it for it in items if np.isfinite(it[0])), key=lambda it: (it[0], it[1], it[2][0]))
        merged: list[list] = []
        for start, end, rows in timed:
            if merged and start - merged[-1][1] <= gap_s:
                merged[-1][1] = max(merged[-1][1], end)
                merged[-1][2] = merged[-1][2] + rows
            else:
                merged.append([start, end, list(rows)])
        merged += [[s, e, list(r)] for s, e, r in items if not np.isfinite(s)]
        for start, end, rows in merged:
            best = max(sorted(rows), key=lambda r: sims[r])
            spans.append((video, AppearanceSpan(best, start, end, tuple(sorted(rows)))))
    spans.sort(key=lambda vs: (-sims[vs[1].row], vs[0], vs[1].start_s))
    return [s for _, s in spans]
