"""Face records to and from Parquet bytes (pure given an optional cipher).

Files are zstd-compressed Parquet with the record schema's metadata kept in
the footer, so any Parquet reader can open them and ours can check the version.
With a `RecordCipher` they are written with Parquet modular encryption
(magic `PARE`); without one, as plain Parquet (`PAR1`), which only `export
--plaintext` writes, outside the store.

**Binding.** An encrypted file carries the store key it was written under in
its schema metadata (`faceid.store_key`). The footer is encrypted and
authenticated with AES-GCM under a key only the keyring unwraps (and Parquet's
own AAD ties every column chunk to the footer of its file), so someone
without the key can neither edit that name nor splice parts of two files: a
record file copied or moved under another video, chunk or analysis is
refused. With a cipher, reading also refuses plain files outright, any
schema but the exact record schema, and rows whose fingerprint, chunk index
or analysis id are not the ones of the key.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faceid_jobs.errors import IntegrityError
from faceid_jobs.records.schema import STORE_KEY_META, check_schema
from faceid_jobs.storage.layout import parse_record_key

if TYPE_CHECKING:
    from faceid_jobs.crypto.parquet_crypto import RecordCipher

__all__ = ["ENCRYPTED_MAGIC", "bind", "check_binding", "open_parquet", "parquet_to_table", "table_to_parquet"]

ENCRYPTED_MAGIC = b"PARE"
_OPTIONS = {"compression": "zstd", "use_dictionary": ["video_uri", "video_fingerprint"]}
# Columns whose values the record key fixes.
_KEYED = ("video_fingerprint", "chunk_index", "analysis_id")


def bind(table: pa.Table, key: str) -> pa.Table:
    """`table` with `key` named in its schema metadata (encrypted with the footer)."""
    meta = dict(table.schema.metadata or {})
    meta[STORE_KEY_META] = key.encode()
    return table.replace_schema_metadata(meta)


def check_binding(schema: pa.Schema, key: str, what: str) -> None:
    """Raise unless an (authenticated) schema names `key` as its store key."""
    bound = (schema.metadata or {}).get(STORE_KEY_META)
    if bound is None:
        raise IntegrityError(f"{key}: {what} is not bound to a store key")
    if bound != key.encode():
        shown = bound.decode(errors="replace")[:120]
        raise IntegrityError(f"{key}: {what} was written as {shown} (moved or copied)")


def table_to_parquet(table: pa.Table, cipher: RecordCipher | None = None, *, key: str | None = None) -> bytes:
    """Serialise a record table as zstd Parquet; encrypted and bound to `key` when a cipher is given."""
    if cipher is not None:
        if not key:
            raise ValueError("an encrypted record file must be bound to its store key")
        return cipher.encrypt(bind(table, key), **_OPTIONS)
    sink = io.BytesIO()
    pq.write_table(table, sink, **_OPTIONS)
    return sink.getvalue()


def open_parquet(data: bytes, source: str, cipher: RecordCipher | None = None) -> pq.ParquetFile:
    """A ParquetFile over record bytes, decrypting when needed; checks the schema.

    With a cipher, `source` is the store key: only an encrypted file bound to it is accepted.

    Raises:
        IntegrityError: not Parquet, damaged, plain while a key is configured,
            encrypted without a cipher or under a key we do not hold, bound
            to another key, or not exactly the record schema.
    """
    encrypted = data[:4] == ENCRYPTED_MAGIC
    if encrypted and cipher is None:
        raise IntegrityError(f"{source}: record file is encrypted and no key is configured")
    if cipher is not None and not encrypted:
        raise IntegrityError(f"{source}: record file is not encrypted (refused: the store is encrypted)")
    try:
        pf = cipher.open(data) if cipher is not None else pq.ParquetFile(io.BytesIO(data))
        check_schema(pf.schema_arrow, source)
        if cipher is not None:
            check_binding(pf.schema_arrow, source, "record file")
        return pf
    except IntegrityError as exc:
        message = str(exc)
        raise IntegrityError(message if message.startswith(source) else f"{source}: {message}") from None
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{source}: damaged or undecryptable record file ({exc.__class__.__name__})") from None


def _check_rows(table: pa.Table, source: str) -> None:
    """Every row's fingerprint, chunk index and analysis id must be those of the key."""
    parsed = parse_record_key(source)
    if parsed is None:
        raise IntegrityError(f"{source}: not a record file key")
    analysis_id, fingerprint, chunk = parsed
    expect = {"video_fingerprint": fingerprint, "chunk_index": chunk, "analysis_id": analysis_id}
    for column, value in expect.items():
        values = table.column(column)
        if table.num_rows and not pc.all(pc.equal(values, pa.scalar(value, values.type))).as_py():
            raise IntegrityError(f"{source}: rows of another {column.replace('_', ' ')} than the file's key")


def parquet_to_table(data: bytes, source: str, columns: list[str] | None = None,
                     cipher: RecordCipher | None = None) -> pa.Table:
    """Read a record file (see `open_parquet`); with a cipher, its rows are checked against the key."""
    pf = open_parquet(data, source, cipher)
    wanted = None if columns is None else list(dict.fromkeys([*columns, *_KEYED])) if cipher else columns
    try:
        table = pf.read(columns=wanted)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IntegrityError(f"{source}: damaged record file ({exc.__class__.__name__})") from None
    if cipher is not None:
        _check_rows(table, source)
        if columns is not None:
            table = table.select(columns)
    return table
