"""Which key a store needs: the `keys/kek.json` marker (I/O on the store).

A store that holds encrypted data records the id of the KEK its data keys
are wrapped with (the id, never the key), so a command run with a missing
or different key refuses up front with a line naming the key it needs,
instead of creating a new key beside unreadable data or failing later on
one file. A store from before the marker is judged by one of its data keys.
"""

from __future__ import annotations

import json

from faceid_jobs.crypto.envelope import stored_kek_ids
from faceid_jobs.errors import IntegrityError, KeyMismatchError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import kek_marker_key

__all__ = ["FORMAT", "check_key", "read_marker", "required_key", "write_marker"]

FORMAT = 1


def read_marker(store: Store) -> str | None:
    """The KEK id the marker names; None when the store has no marker.

    Raises:
        IntegrityError: the marker is damaged.
    """
    try:
        raw = store.get(kek_marker_key())
    except KeyError:
        return None
    try:
        body = json.loads(raw)
        if body["format"] != FORMAT or not isinstance(body["kek_id"], str):
            raise ValueError
        return body["kek_id"]
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{store.uri}: {kek_marker_key()} is damaged") from None


def required_key(store: Store) -> tuple[str | None, bool]:
    """(the KEK id the store's data needs or None for a store without data, whether the marker says so)."""
    marked = read_marker(store)
    if marked is not None:
        return marked, True
    for _, kek_id in stored_kek_ids(store):  # a store from before the marker: its first data key
        return kek_id, False
    return None, False


def write_marker(store: Store, kek_id: str, *, replace: bool = False) -> None:
    """Record that the store's data needs `kek_id` (first writer wins unless `replace`, for rotation)."""
    body = json.dumps({"format": FORMAT, "kek_id": kek_id}).encode()
    if replace:
        store.put(kek_marker_key(), body)
    elif not store.put_if_absent(kek_marker_key(), body):
        check_key(store, read_marker(store), [kek_id])


def check_key(store: Store, needed: str | None, have: list[str], where: str = "") -> None:
    """Refuse a keyring (`have`: its KEK ids, empty when none) without the key `needed`;
    `where` says where the missing key was looked for.

    Raises:
        KeyMismatchError: the store needs a key the keyring lacks.
    """
    if needed is None or needed in have:
        return
    raise KeyMismatchError(f"{store.uri} needs key {needed} ; set FACEID_JOBS_KEY_FILE or FACEID_JOBS_KEY "
                           f"(this machine has key {have[0] if have else 'none'}{where})")
