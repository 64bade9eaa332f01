"""The lease of a key rotation in progress, `journal/rotation.json` (I/O via a Store).

`keys rotate` takes it (put-if-absent) before re-wrapping any data key and
releases it once the new key file is in place. While it is held, every
process that makes a data key (`DataKeys.create`) wraps it under the new KEK,
so no key made during a rotation is left under the retiring one; a re-run of
an interrupted rotation finds the lease and finishes with the same new key.
The body names KEK ids only (they reveal nothing), so it is plaintext JSON,
format 1: ``{"format": 1, "old_kek", "new_kek", "started_at"}``, plus
``"reencrypt": true`` for `keys rotate --reencrypt` (`crypto/reencrypt.py`):
while such a lease is held every other writer refuses to make data keys, so
no object is written under a key the re-encryption would then delete.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from faceid_jobs.errors import ConfigError, IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import rotation_lease_key

__all__ = ["RotationLease", "acquire_lease", "read_lease", "release_lease"]

LEASE_FORMAT = 1


@dataclass(frozen=True)
class RotationLease:
    old_kek: str
    new_kek: str
    started_at: str
    reencrypt: bool = False

    def describe(self) -> str:
        """One line: the rotation in progress and the command that finishes it (`keys status`, `doctor`)."""
        return (f"rotation in progress: {self.old_kek} -> {self.new_kek} since {self.started_at}; finish it "
                f"with `faceid-jobs keys rotate{' --reencrypt' if self.reencrypt else ''}`")


def read_lease(store: Store) -> RotationLease | None:
    """The rotation in progress, or None.

    Raises:
        IntegrityError: the lease object is damaged.
    """
    key = rotation_lease_key()
    try:
        raw = store.get(key)
    except KeyError:
        return None
    try:
        body = json.loads(raw)
        if body.pop("format") != LEASE_FORMAT or not isinstance(body.get("reencrypt", False), bool):
            raise ValueError
        return RotationLease(**body)
    except (ValueError, TypeError, KeyError):
        raise IntegrityError(f"{key}: damaged rotation lease") from None


def acquire_lease(store: Store, old_kek: str, new_kek: str, *, reencrypt: bool = False) -> RotationLease:
    """Take the lease for a rotation old → new, or rejoin the same one.

    Raises:
        ConfigError: another rotation (to another key, or with the other `reencrypt`) is in progress.
    """
    lease = RotationLease(old_kek, new_kek, datetime.now(UTC).isoformat(timespec="seconds"), reencrypt)
    body = asdict(lease) | {"format": LEASE_FORMAT}
    if not reencrypt:
        body.pop("reencrypt")  # a plain rotation's lease stays byte-for-byte what it always was
    if store.put_if_absent(rotation_lease_key(), json.dumps(body, sort_keys=True).encode()):
        return lease
    held = read_lease(store)
    if held is None:
        return acquire_lease(store, old_kek, new_kek, reencrypt=reencrypt)  # released meanwhile
    if held.new_kek != new_kek or held.reencrypt != reencrypt:
        raise ConfigError(f"{rotation_lease_key()}: a rotation {held.old_kek} -> {held.new_kek} is in progress; "
                          f"finish it (`faceid-jobs keys rotate{' --reencrypt' if held.reencrypt else ''}` "
                          "with the same key files) first")
    return held


def release_lease(store: Store) -> None:
    store.delete(rotation_lease_key())
