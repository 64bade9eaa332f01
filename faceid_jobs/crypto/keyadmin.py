"""Key life cycle: create the key file, rotate the KEK (I/O: key files and the store).

Rotation re-wraps every data key of the store under a new KEK and publishes
a new index version whose manifest is authenticated under the new KEK; no
record or shard is re-encrypted. It is resumable: the new key is written to
`<key file>.next` first and only replaces the key file once every data key
is re-wrapped, so running `keys rotate` again after a crash finishes the job.
The old key file is kept as `<key file>.retired-<key id>` (mode 0600) for the
user to destroy once satisfied. The store's key marker names the new key
once every data key is re-wrapped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.config import Settings
from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.keys import Keyring, KmsKek, LocalKek, create_key_file, load_key_file
from faceid_jobs.crypto.marker import write_marker
from faceid_jobs.errors import ConfigError
from faceid_jobs.index.manifest import republish
from faceid_jobs.storage.base import Store
from faceid_jobs.workspace import KEY_ENV

__all__ = ["RotationResult", "init_key", "rotate_key"]


@dataclass(frozen=True)
class RotationResult:
    old_key_id: str
    new_key_id: str
    rewrapped: int
    already: int
    index_version: int | None
    retired_file: str | None


def init_key(settings: Settings, *, force: bool = False) -> tuple[LocalKek, Path]:
    """Create the key file (0600); refuses to replace an existing one unless `force`."""
    path = settings.resolved_key_file()
    return create_key_file(path, overwrite=force), path


def rotate_key(settings: Settings, store: Store, *, to_kms: str | None = None) -> RotationResult:
    """Re-wrap every data key under a new KEK (a new key file, or the KMS key `to_kms`)."""
    if os.environ.get(KEY_ENV):
        raise ConfigError(f"the key comes from {KEY_ENV}: rotate by setting a new key file or "
                          "KMS key and unsetting it")
    path = settings.resolved_key_file()
    old = KmsKek(settings.kms_key_id) if settings.kms_key_id else load_key_file(path)
    next_path = path.with_name(path.name + ".next")
    if to_kms:
        new = KmsKek(to_kms)
    elif next_path.exists():
        new = load_key_file(next_path)  # resume an interrupted rotation
    else:
        new = create_key_file(next_path)
    keys = DataKeys(store, Keyring([new, old]))
    rewrapped, already = keys.rewrap_all()
    published = republish(store, keys, note=f"key rotation {old.key_id} -> {new.key_id}")
    version = published.version if published else None
    write_marker(store, new.key_id, replace=True)  # before the key file changes: a re-run still finds both
    retired = None
    if isinstance(old, LocalKek) and not settings.kms_key_id:
        retired_path = path.with_name(f"{path.name}.retired-{old.key_id}")
        os.replace(path, retired_path)
        retired = str(retired_path)
        if not to_kms:
            os.replace(next_path, path)
    return RotationResult(old.key_id, new.key_id, rewrapped, already, version, retired)
