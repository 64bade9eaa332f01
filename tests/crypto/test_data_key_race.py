"""A writer that read "no rotation" and stalled before storing its data key (no models).

`DataKeys.create` reads the lease and key marker, then puts the wrapped key. A writer held between
the two (``FACEID_JOBS_TEST_PAUSE_AT=data-key-put=<flag>``) while a rotation takes its lease and
re-wraps the store, or runs to the end, would leave a key under the retired KEK that no re-wrap
reaches. After the put it reads them again: the key is wrapped anew under the KEK now due, or deleted
and the write refused when this process lacks that KEK. On a local store and on S3 (loopback moto).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from faceid_jobs.config import Settings
from faceid_jobs.crypto.envelope import DataKeys, stored_kek_ids
from faceid_jobs.crypto.keyadmin import rotate_key
from faceid_jobs.crypto.keys import Keyring, LocalKek, create_key_file, load_key_file
from faceid_jobs.crypto.lease import acquire_lease, release_lease
from faceid_jobs.crypto.marker import write_marker
from faceid_jobs.errors import ConfigError, KeyMismatchError
from faceid_jobs.storage import LocalStore
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import data_key
from faceid_jobs.testhooks import PAUSE_ENV


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    from faceid_jobs.storage.s3 import S3Store

    return S3Store(f"s3://{request.getfixturevalue('s3_bucket')}/store")


class Stalled:
    """`keys.create()` in a thread, held between its lease read and its put until `release()`."""

    def __init__(self, keys: DataKeys, flag: Path, monkeypatch) -> None:
        self.flag, self.result, self.error = flag, None, None
        monkeypatch.setenv(PAUSE_ENV, f"data-key-put={flag}")
        self.thread = threading.Thread(target=self._run, args=(keys,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not Path(f"{flag}.paused").exists():
            assert time.monotonic() < deadline and self.thread.is_alive(), "the writer never reached its put"
            time.sleep(0.01)
        monkeypatch.delenv(PAUSE_ENV)  # the rotation's own data keys are not held

    def _run(self, keys: DataKeys) -> None:
        try:
            self.result = keys.create()
        except Exception as exc:
            self.error = exc

    def release(self) -> None:
        self.flag.touch()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _keks(store: Store) -> dict[str, str]:
    return dict(stored_kek_ids(store))


def test_a_rotation_that_ran_to_the_end_meanwhile_leaves_no_key_under_the_old_kek(store, tmp_path, monkeypatch):
    key_file = tmp_path / "key.json"
    old = create_key_file(key_file)
    write_marker(store, old.key_id)
    before = [DataKeys(store, Keyring([old])).create()[0] for _ in range(3)]
    writer = Stalled(DataKeys(store, Keyring([old])), tmp_path / "go", monkeypatch)
    done = rotate_key(Settings(store=store.uri, key_file=str(key_file)), store)
    assert done.rewrapped == 3
    writer.release()
    # Its key would be under the retired KEK: deleted, and the write refused with what to do.
    assert isinstance(writer.error, KeyMismatchError) and "run it again" in str(writer.error), writer.error
    keks = _keks(store)
    assert set(keks) == set(before) and set(keks.values()) == {done.new_key_id} == {load_key_file(key_file).key_id}


@pytest.mark.parametrize("holds_new_key", [True, False], ids=["holds-new", "lacks-new"])
def test_a_lease_taken_meanwhile_rewraps_the_key_or_refuses(store, tmp_path, monkeypatch, holds_new_key):
    old, new = LocalKek(bytes(32)), LocalKek(bytes([7]) * 32)
    write_marker(store, old.key_id)
    # A writer that holds the new key is one started with `key.json.next` in place (`load_keyring`).
    writer = Stalled(DataKeys(store, Keyring([old, new] if holds_new_key else [old])), tmp_path / "go",
                     monkeypatch)
    acquire_lease(store, old.key_id, new.key_id)
    rotation = DataKeys(store, Keyring([new, old]))
    rotation.rewrap_all()  # both of the rotation's passes are over before the writer's put
    rotation.rewrap_all()
    writer.release()
    if holds_new_key:
        assert writer.error is None, writer.error
        ref, dek = writer.result
        assert _keks(store) == {ref: new.key_id}
        assert DataKeys(store, Keyring([new])).get(ref) == dek  # the same key, readable without the old KEK
    else:
        assert isinstance(writer.error, ConfigError) and "keys rotate" in str(writer.error), writer.error
        assert _keks(store) == {}
    release_lease(store)


def test_an_unstalled_writer_makes_one_key_under_the_kek_due(store):
    old, new = LocalKek(bytes(32)), LocalKek(bytes([7]) * 32)
    keys = DataKeys(store, Keyring([old, new]))
    ref, _ = keys.create()
    acquire_lease(store, old.key_id, new.key_id)
    during, _ = keys.create()
    release_lease(store)
    assert _keks(store) == {ref: old.key_id, during: new.key_id}
    assert store.exists(data_key(ref)) and store.exists(data_key(during))
