"""A store opened with its keys: what every command that reads or writes data needs (I/O).

Everything biometric (record files, index shards) is encrypted; the
keyring comes from AWS KMS (`kms_key_id`), `FACEID_JOBS_KEY`, or a key file.
Only `keys init` or the first `process` on an empty store
(`create_key=True`) creates a key file; other writers (`writer=True`: enroll,
people) need one, readers never make one. A store that holds data names the key it
needs (`crypto/marker.py`): any command run without that key, or with
another, is refused with one line naming it (exit 4), never given a new key.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from faceid_jobs.config import Settings
from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.keys import Keyring, KmsKek, create_key_file, kek_from_env, load_key_file
from faceid_jobs.crypto.marker import check_key, required_key, write_marker
from faceid_jobs.crypto.parquet_crypto import RecordCipher
from faceid_jobs.errors import ConfigError
from faceid_jobs.index.watermark import Watermark
from faceid_jobs.storage.base import Store, open_store

__all__ = ["KEY_ENV", "Workspace", "checked_keyring", "load_keyring", "open_workspace"]

log = logging.getLogger(__name__)

KEY_ENV = "FACEID_JOBS_KEY"


@dataclass(frozen=True)
class Workspace:
    """A store plus the keys to its encrypted contents."""

    store: Store
    keys: DataKeys
    cipher: RecordCipher
    created_key: str | None = None  # path of a key file made just now


def _key_configured(settings: Settings) -> bool:
    return bool(settings.kms_key_id or os.environ.get(KEY_ENV) or settings.resolved_key_file().exists())


def load_keyring(settings: Settings, *, create: bool = False) -> tuple[Keyring, str | None]:
    """The keyring from settings; (keyring, path of a newly created key file or None)."""
    if settings.kms_key_id:
        return Keyring([KmsKek(settings.kms_key_id)]), None
    if os.environ.get(KEY_ENV):
        return Keyring([kek_from_env(os.environ[KEY_ENV])]), None
    path = settings.resolved_key_file()
    if create and not path.exists():
        kek = create_key_file(path)
        log.warning("created encryption key %s at %s: back it up, without it the index cannot be read",
                    kek.key_id, path)
        return Keyring([kek]), str(path)
    keks = [load_key_file(path)]
    pending = path.with_name(path.name + ".next")  # a rotation in progress: new data keys go under it
    if pending.exists():
        keks.append(load_key_file(pending))
    return Keyring(keks), None


def open_workspace(settings: Settings, *, create_key: bool = False, writer: bool = False,
                   store: Store | None = None) -> Workspace:
    """Open the configured store with its keyring.

    `writer`: the store's key marker is written if missing. `create_key` (a
    `process` run; implies `writer`): an empty store may also get a new key
    file when none exists.

    Raises:
        KeyMismatchError: the store holds data under a key this machine lacks.
        ConfigError: no key configured (a reader or writer, or `process` on a store with data).
    """
    target = store or open_store(settings.store)
    keyring, created, needed, marked = checked_keyring(settings, target, create=create_key)
    if (writer or create_key) and not marked:
        write_marker(target, needed or keyring.primary.key_id)
    keys = DataKeys(target, keyring)
    keys.watermark = Watermark(settings.resolved_state_dir(), target.uri)
    return Workspace(target, keys, RecordCipher(keys), created)


def checked_keyring(settings: Settings, store: Store, *,
                    create: bool = False) -> tuple[Keyring, str | None, str | None, bool]:
    """The configured keyring, refused unless it holds the key the store's data needs.

    Returns:
        (keyring, path of a key file created just now (only with `create`, on
        a store without data) or None, the KEK id the store needs or None,
        whether the store's marker names it).

    Raises:
        KeyMismatchError: the store needs a key the keyring lacks (or no key is configured).
        ConfigError: no key configured and the store needs none yet.
    """
    needed, marked = required_key(store)
    try:
        keyring, created = load_keyring(settings, create=create and needed is None)
    except ConfigError:
        if needed is not None and not _key_configured(settings):
            check_key(store, needed, [], f": no {settings.resolved_key_file()}")
        raise
    check_key(store, needed, keyring.key_ids)
    return keyring, created, needed, marked
