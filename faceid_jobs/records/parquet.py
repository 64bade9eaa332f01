"""Face records to and from Parquet bytes (pure given an optional cipher).

Files are zstd-compressed Parquet with the record schema's metadata kept in
the footer, so any Parquet reader can open them and ours can check the version.
With a `RecordCipher` they are written with Parquet modular encryption
(magic `PARE`); without one, as plain Parquet (`PAR1`), which the store only
accepts when the user asked for an unencrypted store.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from faceid_jobs.errors import IntegrityError
from faceid_jobs.records.schema import check_schema

if TYPE_CHECKING:
    from faceid_jobs.crypto.parquet_crypto import RecordCipher

__all__ = ["ENCRYPTED_MAGIC", "parquet_to_table", "table_to_parquet"]

ENCRYPTED_MAGIC = b"PARE"
_OPTIONS = {"compression": "zstd", "use_dictionary": ["video_uri", "video_fingerprint"]}


def table_to_parquet(table: pa.Table, cipher: RecordCipher | None = None) -> bytes:
    """Serialise a record table as zstd Parquet, encrypted when a cipher is given."""
    if cipher is not None:
        return cipher.encrypt(table, **_OPTIONS)
    sink = io.BytesIO()
    pq.write_table(table, sink, **_OPTIONS)
    return sink.getvalue()


def open_parquet(data: bytes, source: str, cipher: RecordCipher | None = None) -> pq.ParquetFile:
    """A ParquetFile over record bytes, decrypting when needed; checks the schema version.

    Raises:
        IntegrityError: not Parquet, damaged, encrypted without a cipher or
            under a key we do not hold, or an unknown schema version.
    """
    encrypted = data[:4] == ENCRYPTED_MAGIC
    if encrypted and cipher is None:
        raise IntegrityError(f"{source}: record file is encrypted and no key is configured")
    try:
        pf = cipher.open(data) if encrypted and cipher is not None else pq.ParquetFile(io.BytesIO(data))
        check_schema(pf.schema_arrow, source)
        return pf
    except IntegrityError as exc:
        message = str(exc)
        raise IntegrityError(message if message.startswith(source) else f"{source}: {message}") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IntegrityError(f"{source}: damaged or undecryptable record file ({exc.__class__.__name__})") from None


def parquet_to_table(data: bytes, source: str, columns: list[str] | None = None,
                     cipher: RecordCipher | None = None) -> pa.Table:
    """Read a record file (see `open_parquet`)."""
    pf = open_parquet(data, source, cipher)
    try:
        return pf.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise IntegrityError(f"{source}: damaged record file ({exc.__class__.__name__})") from None
