"""The video catalog: one small JSON entry per video fingerprint (I/O via a Store).

The entry says which analysis of the video is current. It is written only
after every chunk of a run over the video was attempted, so a killed or
half-done re-analysis never replaces a complete earlier one in the index.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import VIDEOS_PREFIX, StoreKeyError, check_segment, parse_video_key, video_key

__all__ = ["VideoEntry", "list_entries", "load_entry", "save_entry"]

CATALOG_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # 2 added `faces`; a version 1 entry reads with faces None


@dataclass(frozen=True)
class VideoEntry:
    """Catalog entry of one video (by content fingerprint)."""

    fingerprint: str
    uri: str  # where it was last seen
    fps: float
    frame_count: int
    width: int
    height: int
    analysis_id: str
    embedder_id: str
    chunks: int
    failed_chunks: tuple[int, ...] = ()
    other_uris: tuple[str, ...] = field(default=())
    updated_at: str = ""
    faces: int | None = None  # face rows stored for the current analysis (None: not counted yet)

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


def save_entry(store: Store, entry: VideoEntry) -> None:
    data = asdict(entry) | {"version": CATALOG_VERSION}
    store.put(video_key(entry.fingerprint), json.dumps(data, indent=1, sort_keys=True).encode())


def load_entry(store: Store, fingerprint: str) -> VideoEntry | None:
    try:
        raw = store.get(video_key(fingerprint))
    except KeyError:
        return None
    return _parse(raw, video_key(fingerprint))


def list_entries(store: Store) -> list[VideoEntry]:
    return [_parse(store.get(k), k) for k in store.list(VIDEOS_PREFIX) if k.endswith(".json")]


def _check_names(entry: VideoEntry, key: str) -> VideoEntry:
    """Refuse an entry whose names would build keys elsewhere than its own video's records.

    The catalog is plaintext and unauthenticated: someone who can write the
    store but holds no key could set analysis_id to ``../../etc``.
    """
    try:
        for what in ("fingerprint", "analysis_id"):
            check_segment(getattr(entry, what), what)
    except StoreKeyError as exc:
        raise IntegrityError(f"{key}: damaged catalog entry ({exc})") from None
    if parse_video_key(key) not in (None, entry.fingerprint):
        raise IntegrityError(f"{key}: damaged catalog entry (fingerprint {entry.fingerprint!r} "
                             "is not the entry's name)")
    return entry


def _parse(raw: bytes, key: str) -> VideoEntry:
    try:
        data = json.loads(raw)
        if data.pop("version") not in _READABLE_VERSIONS:
            raise ValueError("version")
        data["failed_chunks"] = tuple(data.get("failed_chunks", ()))
        data["other_uris"] = tuple(data.get("other_uris", ()))
        entry = VideoEntry(**data)
    except (ValueError, TypeError, KeyError):
        raise IntegrityError(f"{key}: damaged catalog entry") from None
    return _check_names(entry, key)
