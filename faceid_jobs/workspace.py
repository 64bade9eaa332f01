"""A store opened with its keys: what every command that reads or writes data needs (I/O).

Everything biometric (record files, index shards) is encrypted; the
keyring comes from AWS KMS (`kms_key_id`), `FACEID_JOBS_KEY`, or a key file.
Writers may create the key file on first use (`create_key=True`) of an
empty store, readers never do. A store that holds data names the key it
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

__all__ = ["KEY_ENV", "Workspace", "load_keyring", "open_workspace"]

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


def open_workspace(settings: Settings, *, create_key: bool = False, store: Store | None = None) -> Workspace:
    """Open the configured store with its keyring.

    `create_key`: a writer's open: an empty store may get a new key file
    (when none exists), and the store's key marker is written if missing.

    Raises:
        KeyMismatchError: the store holds data under a key this machine lacks.
        ConfigError: no key configured (a reader, or a writer on a store with data).
    """
    target = store or open_store(settings.store)
    needed, marked = required_key(target)
    try:
        keyring, created = load_keyring(settings, create=create_key and needed is None)
    except ConfigError:
        if needed is not None and not _key_configured(settings):
            check_key(target, needed, [], f": no {settings.resolved_key_file()}")
        raise
    check_key(target, needed, keyring.key_ids)
    if create_key and not marked:
        write_marker(target, needed or keyring.primary.key_id)
    keys = DataKeys(target, keyring)
    keys.watermark = Watermark(settings.resolved_state_dir(), target.uri)
    return Workspace(target, keys, RecordCipher(keys), created)
