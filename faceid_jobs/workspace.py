"""A store opened with its keys: what every command that reads or writes data needs (I/O).

Everything biometric (record files, index shards) is encrypted; the
keyring comes from AWS KMS (`kms_key_id`), `FACEID_JOBS_KEY`, or a key file.
Writers may create the key file on first use (`create_key=True`), readers
never do: a reader without the key gets a clear error, not a new key.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from faceid_jobs.config import Settings
from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.keys import Keyring, KmsKek, create_key_file, kek_from_env, load_key_file
from faceid_jobs.crypto.parquet_crypto import RecordCipher
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
    """Open the configured store with its keyring."""
    target = store or open_store(settings.store)
    keyring, created = load_keyring(settings, create=create_key)
    keys = DataKeys(target, keyring)
    return Workspace(target, keys, RecordCipher(keys), created)
