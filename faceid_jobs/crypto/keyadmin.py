"""Key life cycle: create the key file, rotate the KEK (I/O: key files and the store).

Rotation re-wraps every data key of the store under a new KEK and publishes
a new index version whose manifest is authenticated under the new KEK; no
record or shard is re-encrypted. It is resumable: the new key is written to
`<key file>.next` first and only replaces the key file once every data key
is re-wrapped, so running `keys rotate` again after a crash finishes the job.
The old key file is kept as `<key file>.retired-<key id>` (mode 0600) for the
user to destroy once satisfied. The store's key marker names the new key
once every data key is re-wrapped.

With `reencrypt`, the same lease, key files and marker frame
`crypto/reencrypt.py` instead of the re-wrap: every object is rewritten under
new data keys and the old data keys are deleted (the audit key is kept,
re-wrapped), so the old key file plus an old copy of `keys/data/` opens
nothing current.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from faceid_jobs.config import Settings
from faceid_jobs.crypto.envelope import DataKeys, stored_kek_ids
from faceid_jobs.crypto.keys import Kek, Keyring, KmsKek, LocalKek, create_key_file, load_key_file
from faceid_jobs.crypto.lease import acquire_lease, read_lease, release_lease
from faceid_jobs.crypto.marker import required_key, write_marker
from faceid_jobs.crypto.reencrypt import Progress, reencrypt_store
from faceid_jobs.errors import ConfigError
from faceid_jobs.index.manifest import republish
from faceid_jobs.storage.base import Store
from faceid_jobs.testhooks import crash_point
from faceid_jobs.workspace import KEY_ENV, checked_keyring

__all__ = ["RotationResult", "init_key", "key_status", "rotate_key"]


def init_key(settings: Settings, *, force: bool = False) -> tuple[LocalKek, Path]:
    """Create the key file (0600); refuses to replace an existing one unless `force`."""
    path = settings.resolved_key_file()
    return create_key_file(path, overwrite=force), path


@dataclass(frozen=True)
class RotationResult:
    """What `rotate_key` did: the two key ids, data keys re-wrapped (or already under the new KEK), the index
    version published under the new KEK and where the old key file was kept."""

    old_key_id: str
    new_key_id: str
    rewrapped: int
    already: int
    index_version: int | None
    retired_file: str | None
    # `keys rotate --reencrypt` only: objects rewritten by kind, old data keys deleted, audit keys kept.
    reencrypted: dict[str, int] | None = None
    old_keys_deleted: int = 0
    audit_keys_kept: int = 0
    index_versions_collected: int = 0
    seconds: float = 0.0


def rotate_key(settings: Settings, store: Store, *, to_kms: str | None = None, reencrypt: bool = False,
               progress: Progress | None = None) -> RotationResult:
    """Re-wrap every data key under a new KEK (a new key file, or the KMS key `to_kms`);
    with `reencrypt`, rewrite every object under new data keys and delete the old ones instead."""
    if os.environ.get(KEY_ENV):
        raise ConfigError(f"the key comes from {KEY_ENV}: rotate by setting a new key file or "
                          "KMS key and unsetting it")
    started = time.monotonic()
    _refuse_other_key(settings, store)
    path = settings.resolved_key_file()
    next_path = path.with_name(path.name + ".next")
    old, new = _rotation_keys(settings, store, to_kms)
    # From here every new data key is wrapped under `new` (and, re-encrypting, only this process makes any).
    acquire_lease(store, old.key_id, new.key_id, reencrypt=reencrypt)
    crash_point("rotate-lease")
    keys = DataKeys(store, Keyring([new, old]))
    extra: dict[str, object] = {}
    if reencrypt:
        from faceid_jobs.index.watermark import Watermark

        keys.reencrypting = True
        keys.watermark = Watermark(settings.resolved_state_dir(), store.uri)
        done = reencrypt_store(store, keys, old.key_id, progress)
        rewrapped, already, late = done.audit_keys_kept, 0, 0
        version = done.index_version
        extra = {k: v for k, v in asdict(done).items() if k != "index_version"}
    else:
        rewrapped, already = keys.rewrap_all()
        crash_point("rotate-rewrapped")
        # Again: a writer that made a key under the old KEK just before it saw the lease stored it after the listing.
        late, _ = keys.rewrap_all()
        published = republish(store, keys, note=f"key rotation {old.key_id} -> {new.key_id}")
        version = published.version if published else None
    write_marker(store, new.key_id, replace=True)  # before the key file changes: a re-run still finds both
    retired = None
    if isinstance(old, LocalKek) and not settings.kms_key_id:
        retired_path = path.with_name(f"{path.name}.retired-{old.key_id}")
        if _key_id_of(path) == old.key_id:
            # A link, then one rename over the key file: there is always a key file to read.
            if not retired_path.exists():
                os.link(path, retired_path)
            if to_kms:
                os.unlink(path)
        crash_point("rotate-retired")
        retired = str(retired_path)
        if not to_kms and next_path.exists():
            os.replace(next_path, path)
    release_lease(store)
    return RotationResult(old.key_id, new.key_id, rewrapped + late, already - late, version, retired,
                          **extra, seconds=round(time.monotonic() - started, 3))  # type: ignore[arg-type]


def _refuse_other_key(settings: Settings, store: Store) -> None:
    """Refuse, before the lease or a new key file, to rotate a store whose data is under a key
    this machine lacks: rotating from another key would point the marker at data keys it never wrapped.

    Raises:
        KeyMismatchError: the store needs a key not configured here (exit 4).
    """
    lease = read_lease(store)
    needed, _ = required_key(store)
    if lease is not None and needed in (lease.old_kek, lease.new_kek):
        return  # resuming: `_rotation_keys` finds the lease's own two keys, or says which is missing
    checked_keyring(settings, store)


def _key_id_of(path: Path) -> str | None:
    return load_key_file(path).key_id if path.exists() else None


def _rotation_keys(settings: Settings, store: Store, to_kms: str | None) -> tuple[Kek, Kek]:
    """(old, new) KEK of a rotation; an interrupted one (its lease in the store) resumes with its own keys.

    Never a third key: the lease names the new KEK, found in `<key file>.next`
    (before the swap) or the key file itself (after it), the old one in the
    key file or its `.retired-<id>` copy.

    Raises:
        ConfigError: the lease names a key that is nowhere to be found.
    """
    path = settings.resolved_key_file()
    next_path = path.with_name(path.name + ".next")
    lease = read_lease(store)
    if settings.kms_key_id:
        old: Kek = KmsKek(settings.kms_key_id)
    elif lease is not None and _key_id_of(path) in (lease.new_kek, None):
        retired = path.with_name(f"{path.name}.retired-{lease.old_kek}")
        if not retired.exists():
            raise ConfigError(f"a rotation {lease.old_kek} -> {lease.new_kek} was interrupted and {retired} "
                              "is missing: restore it to finish the rotation")
        old = load_key_file(retired)  # the swap had begun: the key file is the new key, or not there yet
    else:
        old = load_key_file(path)
    if to_kms:
        return old, KmsKek(to_kms)
    if lease is not None and (kms := KmsKek.from_id(lease.new_kek)):
        return old, kms
    if next_path.exists():
        return old, load_key_file(next_path)  # resume an interrupted rotation
    if lease is not None and lease.old_kek == old.key_id and _key_id_of(path) == lease.new_kek:
        return old, load_key_file(path)
    if lease is not None:
        raise ConfigError(f"a rotation {lease.old_kek} -> {lease.new_kek} was interrupted and {next_path} "
                          "is missing: restore it to finish the rotation")
    return old, create_key_file(next_path)


def key_status(settings: Settings, store: Store) -> dict[str, object]:
    """The configured key id, the rotation in progress (or None) and data keys counted by the KEK wrapping them."""
    from faceid_jobs.workspace import load_keyring

    keyring, _ = load_keyring(settings)
    lease = read_lease(store)
    counts = Counter(kek for _, kek in stored_kek_ids(store))
    return {"key_id": keyring.primary.key_id, "rotation": asdict(lease) if lease else None, "data_keys": dict(counts)}
