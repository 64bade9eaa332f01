"""The video catalog: one small JSON entry per video fingerprint (I/O via a Store).

The entry says which analysis of the video is current. It is written only
after every chunk of a run over the video was attempted, so a killed or
half-done re-analysis never replaces a complete earlier one in the index.

Entries are authenticated (`crypto/mac.py`, format 2): the entry's fields,
a plain dict, sit in an envelope with an HMAC under a data key that also
covers the entry's store key, so an entry invented, edited or copied under
another fingerprint by someone without the key is refused. Format 1 entries
(plain JSON) are refused as unauthenticated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from faceid_jobs.crypto.mac import open_sealed_json, seal_json
from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store, map_reads
from faceid_jobs.storage.layout import VIDEOS_PREFIX, StoreKeyError, check_segment, parse_video_key, video_key

if TYPE_CHECKING:
    from faceid_jobs.crypto.envelope import DataKeys

__all__ = ["VideoEntry", "has_entries", "list_entries", "load_entry", "save_entry"]

CATALOG_VERSION = 2
_DOMAIN = "faceid-catalog/v2"


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


def save_entry(store: Store, entry: VideoEntry, keys: DataKeys) -> None:
    key = video_key(entry.fingerprint)
    store.put(key, seal_json(keys, _DOMAIN, key, asdict(entry), CATALOG_VERSION))


def load_entry(store: Store, fingerprint: str, keys: DataKeys) -> VideoEntry | None:
    try:
        raw = store.get(video_key(fingerprint))
    except KeyError:
        return None
    return _parse(raw, video_key(fingerprint), keys)


def list_entries(store: Store, keys: DataKeys) -> list[VideoEntry]:
    """Every catalog entry, authenticated (read side by side on a remote store).

    Raises:
        IntegrityError: an entry is damaged, forged, edited or moved.
    """
    names = [k for k in store.list(VIDEOS_PREFIX) if k.endswith(".json")]

    def read(key: str) -> bytes | None:
        try:
            return store.get(key)
        except KeyError:
            return None  # deleted meanwhile (forget --video)

    return [_parse(raw, k, keys) for k, raw in zip(names, map_reads(store, read, names), strict=True)
            if raw is not None]


def has_entries(store: Store) -> bool:
    """Whether any video is catalogued (no key needed, nothing read)."""
    return any(k.endswith(".json") for k in store.list(VIDEOS_PREFIX))


def _check_names(entry: VideoEntry, key: str) -> VideoEntry:
    """Refuse an entry whose names would build keys elsewhere than its own video's records.

    Entries are authenticated, but the names are still checked before they
    build keys: a bug or an older writer must not reach outside the records.
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


def _parse(raw: bytes, key: str, keys: DataKeys) -> VideoEntry:
    data = open_sealed_json(keys, _DOMAIN, key, raw, CATALOG_VERSION, "catalog entry")
    try:
        data["failed_chunks"] = tuple(data.get("failed_chunks", ()))
        data["other_uris"] = tuple(data.get("other_uris", ()))
        entry = VideoEntry(**data)
    except (ValueError, TypeError, KeyError):
        raise IntegrityError(f"{key}: damaged catalog entry") from None
    return _check_names(entry, key)
