"""Where each kind of object lives in the store (pure: names only).

    records/v1/<analysis_id>/<fingerprint>/chunk-<index:06d>.parquet
        face rows of one chunk (encrypted Parquet); analysis_id hashes models
        + settings that change rows, so a config change writes beside, never
        over, old rows
    videos/<fingerprint>.json
        catalog entry: where the video was seen, its properties, and which
        analysis_id is current for it
    keys/data/<ref>.json                    (crypto/envelope.py)
    index/shards/<shard_id>.shard           (index/shard.py)
    index/manifests/<version:020d>.json     (index/manifest.py)
    people/versions/<version:020d>.bin      people found by clustering (identity/people.py)
"""

from __future__ import annotations

__all__ = [
    "PEOPLE_PREFIX",
    "VIDEOS_PREFIX",
    "people_version_key",
    "record_key",
    "record_prefix",
    "video_key",
]

RECORDS_VERSION = "v1"
VIDEOS_PREFIX = "videos/"


def record_prefix(analysis_id: str, fingerprint: str) -> str:
    return f"records/{RECORDS_VERSION}/{analysis_id}/{fingerprint}/"


def record_key(analysis_id: str, fingerprint: str, chunk_index: int) -> str:
    return f"{record_prefix(analysis_id, fingerprint)}chunk-{chunk_index:06d}.parquet"


def video_key(fingerprint: str) -> str:
    return f"{VIDEOS_PREFIX}{fingerprint}.json"


PEOPLE_PREFIX = "people/versions/"


def people_version_key(version: int) -> str:
    """`people/versions/<version:020d>.bin`: one sealed version of the people (identity/people.py)."""
    return f"{PEOPLE_PREFIX}{version:020d}.bin"
