"""Every store key: where each kind of object lives, built and parsed here only (pure).

    records/v1/<analysis_id>/<fingerprint>/chunk-<index:06d>.parquet
        face rows of one chunk (encrypted Parquet); analysis_id hashes models
        + settings that change rows, so a config change writes beside, never
        over, old rows
    videos/<fingerprint>.json
        catalog entry: where the video was seen, its properties, and which
        analysis_id is current for it
    keys/kek.json                                   which KEK the store needs (its id, never the key)
    keys/data/<ref>.json                            one wrapped data key
    keys/audit.json                                 which data key hashes names in audit records
    keys/sources.json                               which data key authenticates the sources index's marks
    index/shards/<shard_id>.shard                   encrypted FAISS shard
    index/manifests/<version:020d>.json             index version
    index/stale/<UTC time>-<token>.json             record files rewritten in place
    gallery/versions/<version:020d>.bin             gallery version
    gallery/entries/<entry_id>.bin                  one identity
    labels/<gallery version:020d>/<record key>      labels of one record file
    audit/<UTC time>-<token>.json                   audit record
    queries/<run id>/<file>                         results of a search-photos flow run
    people/versions/<version:020d>.bin              people found by clustering (identity/people.py)
    journal/forget-<token>.bin                      a forget in progress (sealed: names the person)
    journal/rotation.json                           the lease of a key rotation in progress
    sources/<uri hash>/<identity hash>/<fingerprint>.<mac>.json
        a source object (file or S3 object) seen unchanged since it was
        fingerprinted, authenticated by the MAC in its name: listing `sources/`
        tells a re-run which videos it need not read (storage/sources.py)

Names that go into a key (analysis ids, fingerprints, refs, ids) often come
from the store itself (a catalog entry, a manifest), which someone with write
access to the store but no key can change. So every key is built by
`join_key`, which checks each segment, and every key a Store is handed is
checked again by `check_key`: no empty, ``.`` or ``..`` segment, no leading
``/``, no backslash, no NUL or other control character, no segment starting
with the local store's temp prefix. A bad key raises `StoreKeyError`
(an `IntegrityError`: exit 4) naming the key.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from faceid_jobs.errors import IntegrityError
from faceid_jobs.fileio import TEMP_PREFIX  # LocalStore's temp files: never listed or read, so no key names one

__all__ = [
    "AUDIT_PREFIX",
    "DATA_KEYS_PREFIX",
    "FORGET_JOURNAL_PREFIX",
    "GALLERY_ENTRIES_PREFIX",
    "GALLERY_VERSIONS_PREFIX",
    "JOURNAL_PREFIX",
    "KEYS_PREFIX",
    "LABELS_PREFIX",
    "MANIFESTS_PREFIX",
    "PEOPLE_PREFIX",
    "QUERIES_PREFIX",
    "RECORDS_PREFIX",
    "SHARDS_PREFIX",
    "SOURCES_PREFIX",
    "STALE_PREFIX",
    "TEMP_PREFIX",
    "VIDEOS_PREFIX",
    "StoreKeyError",
    "audit_key",
    "audit_name_key_pointer",
    "check_key",
    "check_prefix",
    "check_segment",
    "data_key",
    "forget_journal_key",
    "gallery_entry_key",
    "gallery_version_key",
    "join_key",
    "kek_marker_key",
    "label_key",
    "manifest_key",
    "parse_data_key",
    "parse_forget_journal_key",
    "parse_label_key",
    "parse_query_result_key",
    "parse_record_key",
    "parse_shard_key",
    "parse_source_key",
    "parse_video_key",
    "people_version_key",
    "query_result_key",
    "record_key",
    "record_prefix",
    "rotation_lease_key",
    "shard_key",
    "source_key",
    "source_prefix",
    "sources_mac_key_pointer",
    "stale_key",
    "versions",
    "video_key",
]

RECORDS_VERSION = "v1"
RECORDS_PREFIX = "records/"
VIDEOS_PREFIX = "videos/"
DATA_KEYS_PREFIX = "keys/data/"
KEYS_PREFIX = "keys/"
SHARDS_PREFIX = "index/shards/"
MANIFESTS_PREFIX = "index/manifests/"
STALE_PREFIX = "index/stale/"
GALLERY_VERSIONS_PREFIX = "gallery/versions/"
GALLERY_ENTRIES_PREFIX = "gallery/entries/"
LABELS_PREFIX = "labels/"
AUDIT_PREFIX = "audit/"
QUERIES_PREFIX = "queries/"
PEOPLE_PREFIX = "people/versions/"
SOURCES_PREFIX = "sources/"
JOURNAL_PREFIX = "journal/"
FORGET_JOURNAL_PREFIX = JOURNAL_PREFIX + "forget-"

_CHUNK_PREFIX, _CHUNK_SUFFIX = "chunk-", ".parquet"
_VERSION_SUFFIX = {MANIFESTS_PREFIX: ".json", GALLERY_VERSIONS_PREFIX: ".bin", PEOPLE_PREFIX: ".bin"}


class StoreKeyError(IntegrityError):
    """A store key, or a name that goes into one, is malformed (a tampered store or a bug)."""


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "empty segment"
    if segment in (".", ".."):
        return f"{segment!r} segment"
    if "\\" in segment:
        return "backslash"
    if any(unicodedata.category(c) == "Cc" for c in segment):
        return "control character"
    if segment.startswith(TEMP_PREFIX):
        return f"segment starts with {TEMP_PREFIX!r}"
    return None


def _refuse(key: str, problem: str) -> StoreKeyError:
    return StoreKeyError(f"invalid store key {key!r}: {problem}")


def check_segment(segment: str, what: str = "name") -> str:
    """A name that is one key segment (no ``/``), or StoreKeyError.

    Example:
        >>> check_segment("s1-0123abcd", "fingerprint")
        's1-0123abcd'
    """
    if not isinstance(segment, str):
        raise StoreKeyError(f"invalid {what} {segment!r}: not text")
    problem = "'/' in a single segment" if "/" in segment else _segment_problem(segment)
    if problem:
        raise StoreKeyError(f"invalid {what} {segment!r} for a store key: {problem}")
    return segment


def check_key(key: str) -> str:
    """Validate a whole store key and return it (StoreKeyError names the key).

    Example:
        >>> check_key("videos/s1-ab.json")
        'videos/s1-ab.json'
    """
    if not isinstance(key, str) or not key:
        raise _refuse(str(key), "empty")
    if key.startswith("/"):
        raise _refuse(key, "absolute path")
    for segment in key.split("/"):
        problem = _segment_problem(segment)
        if problem:
            raise _refuse(key, problem)
    return key


def check_prefix(prefix: str) -> str:
    """Validate a list prefix: empty, or a key that may end in ``/`` or part of a segment."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def join_key(prefix: str, *segments: str) -> str:
    """The one way keys are built: a prefix of this module, then segments joined by ``/``.

    The whole key is checked, so a name holding ``/``, ``..`` or a control
    character never reaches a Store; builders check single names with
    `check_segment` first, so the error names what was wrong.
    """
    return check_key(prefix + "/".join(segments))


def _parse_under(key: str, prefix: str, suffix: str) -> str | None:
    """The single segment between `prefix` and `suffix`, or None when `key` is not of that form."""
    if not (key.startswith(prefix) and key.endswith(suffix)):
        return None
    name = key[len(prefix):len(key) - len(suffix)]
    return name if name and "/" not in name and _segment_problem(name) is None else None


def _parse_version(key: str, prefix: str, suffix: str) -> int | None:
    name = _parse_under(key, prefix, suffix)
    return int(name) if name is not None and name.isascii() and name.isdigit() else None


# records/ and the catalog

def record_prefix(analysis_id: str, fingerprint: str) -> str:
    """`records/v1/<analysis_id>/<fingerprint>/` (with the trailing slash)."""
    return join_key(RECORDS_PREFIX, RECORDS_VERSION, check_segment(analysis_id, "analysis id"),
                    check_segment(fingerprint, "fingerprint")) + "/"


def record_key(analysis_id: str, fingerprint: str, chunk_index: int) -> str:
    return f"{record_prefix(analysis_id, fingerprint)}{_CHUNK_PREFIX}{int(chunk_index):06d}{_CHUNK_SUFFIX}"


def parse_record_key(key: str) -> tuple[str, str, int] | None:
    """(analysis_id, fingerprint, chunk index) of a record key, or None."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] + "/" != RECORDS_PREFIX or parts[1] != RECORDS_VERSION:
        return None
    chunk = _parse_version(parts[4], _CHUNK_PREFIX, _CHUNK_SUFFIX)
    if chunk is None or any(_segment_problem(p) for p in parts[2:4]):
        return None
    return parts[2], parts[3], chunk


def video_key(fingerprint: str) -> str:
    return join_key(VIDEOS_PREFIX, check_segment(fingerprint, "fingerprint") + ".json")


def parse_video_key(key: str) -> str | None:
    """The fingerprint a catalog key names, or None."""
    return _parse_under(key, VIDEOS_PREFIX, ".json")


# keys/data/

def kek_marker_key() -> str:
    """The plaintext marker naming the KEK a store's data needs."""
    return join_key(KEYS_PREFIX, "kek.json")


def audit_name_key_pointer() -> str:
    """The plaintext pointer naming the data key audit records hash identity names with (a ref, never the key)."""
    return join_key(KEYS_PREFIX, "audit.json")


def sources_mac_key_pointer() -> str:
    """The plaintext pointer naming the data key that authenticates sources marks (a ref, never the key)."""
    return join_key(KEYS_PREFIX, "sources.json")


def data_key(ref: str) -> str:
    return join_key(DATA_KEYS_PREFIX, check_segment(ref, "data key reference") + ".json")


def parse_data_key(key: str) -> str | None:
    return _parse_under(key, DATA_KEYS_PREFIX, ".json")


# index/

def shard_key(shard_id: str) -> str:
    return join_key(SHARDS_PREFIX, check_segment(shard_id, "shard id") + ".shard")


def parse_shard_key(key: str) -> str | None:
    return _parse_under(key, SHARDS_PREFIX, ".shard")


def manifest_key(version: int) -> str:
    return join_key(MANIFESTS_PREFIX, f"{int(version):020d}.json")


def versions(keys: Iterable[str], prefix: str) -> list[int]:
    """The versions among `keys` (a listing of `prefix`), ascending; other keys are ignored.

    `prefix` is one of the versioned kinds: `MANIFESTS_PREFIX`, `GALLERY_VERSIONS_PREFIX`, `PEOPLE_PREFIX`.
    """
    suffix = _VERSION_SUFFIX[prefix]
    return sorted(v for v in (_parse_version(key, prefix, suffix) for key in keys) if v is not None)


def stale_key(stamp: str, token: str) -> str:
    """`index/stale/<stamp>-<token>.json`: `stamp` a compact UTC time, so marks sort by time."""
    return join_key(STALE_PREFIX, check_segment(f"{stamp}-{token}", "stale mark name") + ".json")


# gallery/, labels/ and people/

def people_version_key(version: int) -> str:
    """`people/versions/<version:020d>.bin`: one sealed version of the people (identity/people.py)."""
    return join_key(PEOPLE_PREFIX, f"{int(version):020d}.bin")


def gallery_version_key(version: int) -> str:
    return join_key(GALLERY_VERSIONS_PREFIX, f"{int(version):020d}.bin")


def gallery_entry_key(entry_id: str) -> str:
    return join_key(GALLERY_ENTRIES_PREFIX, check_segment(entry_id, "gallery entry id") + ".bin")


def label_key(gallery_version: int, record_key: str) -> str:
    """`labels/<gallery_version:020d>/<record_key>`."""
    return join_key(LABELS_PREFIX, f"{int(gallery_version):020d}", check_key(record_key))


def parse_label_key(key: str) -> tuple[int, str] | None:
    """(gallery version, record key) of a label key, or None."""
    if not key.startswith(LABELS_PREFIX):
        return None
    version, _, record = key[len(LABELS_PREFIX):].partition("/")
    if not (version.isascii() and version.isdigit() and record):
        return None
    return int(version), record


# journal/

def forget_journal_key(token: str) -> str:
    """`journal/forget-<token>.bin`: the intent of one `forget` until it is done (identity/intent.py)."""
    return join_key(JOURNAL_PREFIX, "forget-" + check_segment(token, "journal token") + ".bin")


def parse_forget_journal_key(key: str) -> str | None:
    """The token of a forget journal key, or None."""
    return _parse_under(key, FORGET_JOURNAL_PREFIX, ".bin")


def rotation_lease_key() -> str:
    """`journal/rotation.json`: the one key rotation in progress (crypto/lease.py)."""
    return join_key(JOURNAL_PREFIX, "rotation.json")


# audit/

def audit_key(stamp: str, token: str) -> str:
    """`audit/<stamp>-<token>.json`: `stamp` a compact UTC time, so records sort by time."""
    return join_key(AUDIT_PREFIX, check_segment(f"{stamp}-{token}", "audit record name") + ".json")


# queries/

def query_result_key(run_id: str, name: str) -> str:
    """`queries/<run_id>/<name>.bin`: one file of a search flow run's results, sealed (`search/stored`)."""
    return join_key(QUERIES_PREFIX, check_segment(run_id, "run id"),
                    check_segment(name, "result file name") + ".bin")


def parse_query_result_key(key: str) -> tuple[str, str] | None:
    """(run id, file name) of a query result key, or None."""
    if not key.startswith(QUERIES_PREFIX):
        return None
    run_id, _, rest = key[len(QUERIES_PREFIX):].partition("/")
    name = _parse_under(rest, "", ".bin")
    return (run_id, name) if name is not None and run_id and _segment_problem(run_id) is None else None


# sources/

def source_prefix(uri_hash: str) -> str:
    """`sources/<uri_hash>/`: the marks of one source location (with the trailing slash)."""
    return join_key(SOURCES_PREFIX, check_segment(uri_hash, "source hash")) + "/"


def source_key(uri_hash: str, identity_hash: str, fingerprint: str, mac: str) -> str:
    """`sources/<uri_hash>/<identity_hash>/<fingerprint>.<mac>.json`: a source seen with this identity
    had this content fingerprint (the MAC, over the three, is `storage/sources.py`'s)."""
    return join_key(source_prefix(uri_hash), check_segment(identity_hash, "source identity hash"),
                    f"{check_segment(fingerprint, 'fingerprint')}.{check_segment(mac, 'mark MAC')}.json")


def parse_source_key(key: str) -> tuple[str, str, str, str] | None:
    """(uri hash, identity hash, fingerprint, mac) of a source mark key, or None (also for a mark
    of an older format, without a MAC)."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] + "/" != SOURCES_PREFIX or not parts[3].endswith(".json"):
        return None
    fingerprint, dot, mac = parts[3][:-len(".json")].rpartition(".")
    names = (parts[1], parts[2], fingerprint, mac)
    if not dot or any(not n or "/" in n or _segment_problem(n) for n in names):
        return None
    return names
