"""Parquet modular encryption for record files, keyed by the project's keyring.

Record files stay Parquet (magic `PARE`, footer and every column encrypted
with AES-GCM), readable by any Parquet reader that is given the key through
a KMS client. Ours: every file gets its own master key identifier, a
`DataKeys` reference; Parquet's per-file keys are wrapped with that data key,
and the data key is wrapped by the KEK in a separate key object. So `keys
rotate` only re-wraps key objects, never rewrites Parquet (`keys rotate
--reencrypt` rewrites it under new data keys: `crypto/reencrypt.py`).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceid_jobs.crypto.envelope import DataKeys
from faceid_jobs.errors import IntegrityError

__all__ = ["RecordCipher", "key_refs"]

_CACHE = dt.timedelta(minutes=10)
_MASTER_KEY = re.compile(rb'"masterKeyID"\s*:\s*"([0-9a-f]{32})"')


def key_refs(data: bytes) -> set[str]:
    """Data key references an encrypted Parquet file's keys are wrapped with (records, label files).

    They are in the file's (plaintext) key material: ``"masterKeyID":"<ref>"``;
    deleting these data keys makes every copy of the file undecryptable.
    """
    return {m.group(1).decode() for m in _MASTER_KEY.finditer(data)}


class _Kms(pe.KmsClient):
    """Wraps Parquet's keys with our data keys (looked up by master key id)."""

    def __init__(self, keys: DataKeys) -> None:
        super().__init__()
        self._keys = keys

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> bytes:
        dek = self._keys.get(master_key_identifier)
        nonce = os.urandom(12)
        sealed = AESGCM(dek).encrypt(nonce, key_bytes, master_key_identifier.encode())
        return base64.b64encode(nonce + sealed)

    def unwrap_key(self, wrapped_key: bytes, master_key_identifier: str) -> bytes:
        dek = self._keys.get(master_key_identifier)
        blob = base64.b64decode(wrapped_key)
        try:
            return AESGCM(dek).decrypt(blob[:12], blob[12:], master_key_identifier.encode())
        except InvalidTag:
            raise IntegrityError(f"record key {master_key_identifier} fails authentication") from None


class RecordCipher:
    """Encrypts record tables to Parquet bytes and back."""

    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys
        self._factory = pe.CryptoFactory(lambda _config: _Kms(keys))
        self._conn = pe.KmsConnectionConfig()

    def encrypt(self, table: pa.Table, **write_options: object) -> bytes:
        """zstd Parquet of `table`, footer and all columns encrypted under a new data key."""
        ref, _ = self.keys.create()
        config = pe.EncryptionConfiguration(
            footer_key=ref,
            uniform_encryption=True,
            encryption_algorithm="AES_GCM_V1",
            plaintext_footer=False,
            double_wrapping=False,
            cache_lifetime=_CACHE,
        )
        props = self._factory.file_encryption_properties(self._conn, config)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, encryption_properties=props, **write_options)
        return sink.getvalue().to_pybytes()

    def decryption_properties(self) -> pe.FileDecryptionProperties:
        return self._factory.file_decryption_properties(self._conn, pe.DecryptionConfiguration(cache_lifetime=_CACHE))

    def open(self, data: bytes) -> pq.ParquetFile:
        """A ParquetFile over encrypted bytes (raises pyarrow/IntegrityError on a bad key)."""
        return pq.ParquetFile(pa.BufferReader(data), decryption_properties=self.decryption_properties())
