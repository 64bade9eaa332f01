"""The lease of `keys rotate --reencrypt` (no models): its flag round-trips, other writers refuse to make
data keys while it is held, and the re-encrypting process wraps under the new key."""

import json

import pytest

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.keys import Keyring, LocalKek
from faceid_jobs.crypto.lease import acquire_lease, read_lease, release_lease
from faceid_jobs.errors import ConfigError
from faceid_jobs.storage import LocalStore
from faceid_jobs.storage.layout import rotation_lease_key


def test_a_reencrypt_lease_round_trips_and_a_plain_one_stays_as_it_was(tmp_path):
    store = LocalStore(tmp_path)
    acquire_lease(store, "local-a", "local-b")
    assert "reencrypt" not in json.loads(store.get(rotation_lease_key()))
    assert read_lease(store).reencrypt is False
    with pytest.raises(ConfigError, match="keys rotate` with the same key files"):
        acquire_lease(store, "local-a", "local-b", reencrypt=True)
    release_lease(store)
    acquire_lease(store, "local-a", "local-b", reencrypt=True)
    assert read_lease(store).reencrypt is True
    assert acquire_lease(store, "local-a", "local-b", reencrypt=True).reencrypt  # rejoined
    with pytest.raises(ConfigError, match="keys rotate --reencrypt"):
        acquire_lease(store, "local-a", "local-b")


def test_writers_refuse_data_keys_and_mac_keys_while_keys_are_reencrypted(tmp_path):
    store = LocalStore(tmp_path)
    old, new = LocalKek(bytes(32)), LocalKek(bytes([1]) * 32)
    writer = DataKeys(store, Keyring([old, new]))
    writer.mac_key()  # made before the re-encryption began
    acquire_lease(store, old.key_id, new.key_id, reencrypt=True)
    with pytest.raises(ConfigError, match="keys rotate --reencrypt"):
        writer.create()
    with pytest.raises(ConfigError, match="keys rotate --reencrypt"):
        writer.mac_key()
    rotation = DataKeys(store, Keyring([new, old]))
    rotation.reencrypting = True
    ref, _ = rotation.create()
    assert rotation.kek_of(ref) == new.key_id
    assert rotation.wrapped_by(new.key_id) == {ref}
    assert rotation.rewrap(ref) is False
    release_lease(store)
    assert writer.create()[0]
