"""Key-encryption keys and envelope data keys (I/O: key files and KMS).

Every encrypted object gets a fresh 256-bit data key (DEK). The DEK is wrapped
by a key-encryption key (KEK) and the wrapped form is stored with the object;
the KEK itself never enters the store, logs or error messages. KEKs come
from:

- a key file (`faceid-jobs keys init`): JSON holding one 256-bit key, created
  0600, refused when group- or world-readable;
- the environment (`FACEID_JOBS_KEY`, base64 of 32 bytes);
- AWS KMS (`kms:<key id or ARN>`): wrap/unwrap are KMS Encrypt/Decrypt calls.

A KEK is named by a key id that reveals nothing about it: `local-<hash>` (a
keyed BLAKE2b of the key) or `kms:<key id>`. A `Keyring` holds the KEKs a
process may use; the first is primary (wraps new DEKs), the others can only
unwrap (used during rotation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceid_jobs.errors import ConfigError, IntegrityError
from faceid_jobs.fileio import atomic_create, atomic_write

__all__ = [
    "Kek",
    "Keyring",
    "KmsKek",
    "LocalKek",
    "WrappedKey",
    "create_key_file",
    "load_key_file",
]

KEY_FILE_VERSION = 1
_WRAP_AD = b"faceid-jobs/dek/v1|"


class Kek(Protocol):
    key_id: str

    def wrap(self, dek: bytes) -> bytes: ...

    def unwrap(self, blob: bytes) -> bytes: ...


@dataclass(frozen=True)
class WrappedKey:
    """A DEK wrapped by the KEK named `kek_id`; safe to store."""

    kek_id: str
    blob: bytes

    def encode(self) -> str:
        return f"{self.kek_id}:{base64.b64encode(self.blob).decode()}"

    @classmethod
    def decode(cls, text: str) -> WrappedKey:
        kek_id, _, b64 = text.rpartition(":")
        if not kek_id:
            raise IntegrityError("damaged wrapped data key")
        return cls(kek_id, base64.b64decode(b64))


class LocalKek:
    """A 256-bit KEK held in memory; wraps with AES-256-GCM."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ConfigError("a key must be 32 bytes (256 bits)")
        self._aead = AESGCM(secret)
        digest = hashlib.blake2b(secret, digest_size=8, person=b"faceid-kek-id").hexdigest()
        self.key_id = f"local-{digest}"

    def wrap(self, dek: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, dek, _WRAP_AD + self.key_id.encode())

    def unwrap(self, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], _WRAP_AD + self.key_id.encode())
        except (InvalidTag, ValueError):
            raise IntegrityError(f"data key wrapped by {self.key_id} fails authentication") from None

    def __repr__(self) -> str:  # never show the secret
        return f"LocalKek({self.key_id})"


class KmsKek:
    """A KEK that lives in AWS KMS; wrap and unwrap are KMS calls."""

    def __init__(self, kms_key: str, client: Any | None = None) -> None:
        if client is None:
            from faceid_jobs.storage.s3 import make_client

            client = make_client("kms")
        self._client = client
        self._kms_key = kms_key
        self.key_id = f"kms:{kms_key}"

    @classmethod
    def from_id(cls, kek_id: str) -> KmsKek | None:
        """The KMS KEK a key id names (``kms:<key id or ARN>``: reachable by its id alone), None for any other."""
        return cls(kek_id[len("kms:"):]) if kek_id.startswith("kms:") else None

    def wrap(self, dek: bytes) -> bytes:
        resp = self._client.encrypt(KeyId=self._kms_key, Plaintext=dek,
                                    EncryptionContext={"app": "faceid-jobs"})
        return resp["CiphertextBlob"]

    def unwrap(self, blob: bytes) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.decrypt(CiphertextBlob=blob, KeyId=self._kms_key,
                                        EncryptionContext={"app": "faceid-jobs"})["Plaintext"]
        except (ClientError, BotoCoreError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise IntegrityError(f"KMS cannot unwrap a data key with {self.key_id} ({code})") from None


class Keyring:
    """The KEKs this process may use; the first wraps new data keys."""

    def __init__(self, keks: list[Kek]) -> None:
        if not keks:
            raise ConfigError("no encryption key configured (run `faceid-jobs keys init`)")
        self.primary = keks[0]
        self._by_id = {k.key_id: k for k in keks}

    @property
    def key_ids(self) -> list[str]:
        return list(self._by_id)

    def new_data_key(self, kek: Kek | None = None) -> tuple[bytes, WrappedKey]:
        """A fresh DEK and its wrapped form under the primary KEK (or `kek`)."""
        kek = kek or self.primary
        dek = os.urandom(32)
        return dek, WrappedKey(kek.key_id, kek.wrap(dek))

    def find(self, key_id: str) -> Kek | None:
        """The KEK of this id, if the keyring holds it."""
        return self._by_id.get(key_id)

    def unwrap(self, wrapped: WrappedKey, name: str = "") -> bytes:
        kek = self._by_id.get(wrapped.kek_id)
        where = f"{name}: " if name else ""
        if kek is None:
            raise IntegrityError(
                f"{where}encrypted with key {wrapped.kek_id}, which is not the configured key "
                f"({', '.join(self._by_id)}): wrong key")
        try:
            return kek.unwrap(wrapped.blob)
        except IntegrityError as exc:
            raise IntegrityError(f"{where}{exc}") from None

    def rewrap(self, wrapped: WrappedKey, name: str = "") -> WrappedKey:
        """The same DEK wrapped under the primary KEK (for rotation)."""
        if wrapped.kek_id == self.primary.key_id:
            return wrapped
        return WrappedKey(self.primary.key_id, self.primary.wrap(self.unwrap(wrapped, name)))


def create_key_file(path: Path, *, overwrite: bool = False) -> LocalKek:
    """Write a new random KEK to `path` with mode 0600 (never replacing one silently)."""
    secret = os.urandom(32)
    kek = LocalKek(secret)
    body = {
        "faceid_jobs_key": KEY_FILE_VERSION,
        "key_id": kek.key_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "key": base64.b64encode(secret).decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(body, indent=1).encode()
    try:
        if overwrite:
            atomic_write(path, data, 0o600)
        elif not atomic_create(path, data, 0o600):
            raise ConfigError(f"{path}: key file already exists (refusing to replace it)")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the key file ({exc.strerror or exc})") from None
    return kek


def load_key_file(path: Path) -> LocalKek:
    """Read a key file, refusing it when others can read it.

    Raises:
        ConfigError: missing, unreadable, damaged, or group/world-readable.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: key file not found (run `faceid-jobs keys init`)") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: key file is accessible to other users (chmod 600 it)")
    try:
        body = json.loads(path.read_text())
        if body.get("faceid_jobs_key") != KEY_FILE_VERSION:
            raise ValueError
        secret = base64.b64decode(body["key"], validate=True)
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a faceid-jobs key file") from None
    return LocalKek(secret)


def kek_from_env(value: str) -> LocalKek:
    """A KEK from base64 text (FACEID_JOBS_KEY); the value never appears in errors."""
    try:
        secret = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raise ConfigError("FACEID_JOBS_KEY is not base64") from None
    if len(secret) != 32:
        raise ConfigError("FACEID_JOBS_KEY must decode to 32 bytes")
    return LocalKek(secret)
