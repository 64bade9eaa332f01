"""A video's analysis made current in the catalog once its chunks were attempted (I/O via a Store)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.pipeline.plan import VideoPlan
from faceid_jobs.records.parquet import open_parquet
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.catalog import VideoEntry, load_entry, save_entry
from faceid_jobs.storage.layout import record_key
from faceid_jobs.workspace import Workspace

__all__ = ["count_stored_faces", "finish_video"]


def count_stored_faces(ws: Workspace, plan: VideoPlan) -> int:
    """Rows stored for a video's current analysis (from Parquet footers)."""
    total = 0
    for job in plan.jobs:
        key = record_key(plan.analysis_id, plan.fingerprint, job.chunk.index)
        try:
            data = ws.store.get(key)
        except KeyError:
            continue
        total += open_parquet(data, key, ws.cipher).metadata.num_rows
    return total


def finish_video(store: Store, plan: VideoPlan, embedder_id: str, failed: list[int], keys: DataKeys,
                 faces: int | None = None) -> VideoEntry:
    """Make this analysis the video's current one in the catalog.

    Called once every chunk was attempted; the other URIs the same content
    was seen under are kept, so a moved file is still recognised. `faces`
    (rows stored for the analysis) lets a re-run that skips the video report it.
    """
    previous = load_entry(store, plan.fingerprint, keys)
    others = set(previous.other_uris) | {previous.uri} if previous else set()
    others.discard(plan.uri)
    entry = VideoEntry(
        fingerprint=plan.fingerprint,
        uri=plan.uri,
        fps=plan.info.fps,
        frame_count=plan.info.frame_count,
        width=plan.info.width,
        height=plan.info.height,
        analysis_id=plan.analysis_id,
        embedder_id=embedder_id,
        chunks=len(plan.jobs),
        failed_chunks=tuple(sorted(failed)),
        other_uris=tuple(sorted(others)),
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        faces=faces,
    )
    # updated_at is new on every run: compare without it, so a re-run that
    # changes nothing leaves the entry's bytes (and the index) as they are.
    if previous is not None and replace(previous, updated_at=entry.updated_at) == entry:
        return previous
    save_entry(store, entry, keys)
    return entry
