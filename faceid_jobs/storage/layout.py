"""Where each kind of object lives in the store (pure: names only).

    records/v1/<analysis_id>/<fingerprint>/chunk-<index:06d>.parquet
        face rows of one chunk; analysis_id hashes models + settings that
        change rows, so a config change writes beside, never over, old rows
    videos/<fingerprint>.json
        catalog entry: where the video was seen, its properties, and which
        analysis_id is current for it
    index/flat/<build_id>/vectors.faiss, index/flat/<build_id>/meta.parquet
        one immutable index build
    index/flat/LATEST.json
        pointer to the newest complete build, written last
"""

from __future__ import annotations

__all__ = [
    "INDEX_LATEST",
    "VIDEOS_PREFIX",
    "index_files",
    "record_key",
    "record_prefix",
    "video_key",
]

RECORDS_VERSION = "v1"
VIDEOS_PREFIX = "videos/"
INDEX_LATEST = "index/flat/LATEST.json"


def record_prefix(analysis_id: str, fingerprint: str) -> str:
    return f"records/{RECORDS_VERSION}/{analysis_id}/{fingerprint}/"


def record_key(analysis_id: str, fingerprint: str, chunk_index: int) -> str:
    return f"{record_prefix(analysis_id, fingerprint)}chunk-{chunk_index:06d}.parquet"


def video_key(fingerprint: str) -> str:
    return f"{VIDEOS_PREFIX}{fingerprint}.json"


def index_files(build_id: str) -> tuple[str, str]:
    """(vectors key, metadata key) of one index build."""
    return f"index/flat/{build_id}/vectors.faiss", f"index/flat/{build_id}/meta.parquet"
