import base64
import os
import stat

import pytest

from faceid_jobs.config import Settings
from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.crypto.keys import Keyring, LocalKek, create_key_file, kek_from_env, load_key_file
from faceid_jobs.errors import ConfigError, IntegrityError
from faceid_jobs.storage import LocalStore
from faceid_jobs.workspace import load_keyring


def test_key_file_is_0600_and_round_trips(tmp_path):
    path = tmp_path / "cfg" / "key.json"
    kek = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path).key_id == kek.key_id
    with pytest.raises(ConfigError, match="already exists"):
        create_key_file(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path, mode):
    path = tmp_path / "key.json"
    create_key_file(path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="other users"):
        load_key_file(path)


def test_missing_and_garbage_key_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_key_file(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match="not a faceid-jobs key file"):
        load_key_file(bad)


def test_key_material_never_in_messages_or_repr(tmp_path):
    secret = os.urandom(32)
    text = base64.b64encode(secret).decode()
    kek = kek_from_env(text)
    assert text not in repr(kek) and secret.hex() not in repr(kek)
    with pytest.raises(ConfigError) as exc:
        kek_from_env(text[:-4] + "!!!!")
    assert text[:10] not in str(exc.value)


def test_wrong_key_names_both_ids(tmp_path):
    store = LocalStore(tmp_path)
    a, b = LocalKek(os.urandom(32)), LocalKek(os.urandom(32))
    ref, dek = DataKeys(store, Keyring([a])).create()
    with pytest.raises(IntegrityError, match="wrong key") as exc:
        DataKeys(store, Keyring([b])).get(ref)
    assert a.key_id in str(exc.value) and b.key_id in str(exc.value)
    assert DataKeys(store, Keyring([b, a])).get(ref) == dek


def test_rewrap_moves_every_key_to_the_primary(tmp_path):
    store = LocalStore(tmp_path)
    old, new = LocalKek(os.urandom(32)), LocalKek(os.urandom(32))
    keys_old = DataKeys(store, Keyring([old]))
    made = dict(keys_old.create() for _ in range(3))
    assert DataKeys(store, Keyring([new, old])).rewrap_all() == (3, 0)
    assert DataKeys(store, Keyring([new, old])).rewrap_all() == (0, 3)
    fresh = DataKeys(store, Keyring([new]))
    assert all(fresh.get(ref) == dek for ref, dek in made.items())


def test_keyring_precedence(tmp_path, monkeypatch):
    settings = Settings(key_file=str(tmp_path / "k.json"))
    with pytest.raises(ConfigError, match="not found"):
        load_keyring(settings)
    ring, created = load_keyring(settings, create=True)
    assert created == str(tmp_path / "k.json")
    assert load_keyring(settings)[0].primary.key_id == ring.primary.key_id
    monkeypatch.setenv("FACEID_JOBS_KEY", base64.b64encode(bytes(32)).decode())
    assert load_keyring(settings)[0].primary.key_id == LocalKek(bytes(32)).key_id


def test_kms_kek_wraps_through_a_real_kms_endpoint(s3_server, tmp_path):
    from faceid_jobs.crypto.keys import KmsKek
    from faceid_jobs.storage.s3 import make_client

    kms_key = make_client("kms").create_key()["KeyMetadata"]["KeyId"]
    kek = KmsKek(kms_key)
    store = LocalStore(tmp_path)
    ref, dek = DataKeys(store, Keyring([kek])).create()
    assert DataKeys(store, Keyring([KmsKek(kms_key)])).get(ref) == dek
    other = make_client("kms").create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(IntegrityError, match="wrong key"):
        DataKeys(store, Keyring([KmsKek(other)])).get(ref)
