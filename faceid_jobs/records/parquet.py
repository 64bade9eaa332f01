"""Face records to and from Parquet bytes (pure: bytes in, bytes out).

Files are zstd-compressed Parquet with the record schema's metadata kept in
the footer, so any Parquet reader can open them and ours can check the version.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from faceid_jobs.errors import IntegrityError
from faceid_jobs.records.schema import check_schema

__all__ = ["parquet_to_table", "table_to_parquet"]


def table_to_parquet(table: pa.Table) -> bytes:
    """Serialise a record table as zstd Parquet."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=["video_uri", "video_fingerprint"])
    return sink.getvalue()


def parquet_to_table(data: bytes, source: str, columns: list[str] | None = None) -> pa.Table:
    """Read a record file, checking its schema version.

    Raises:
        IntegrityError: not Parquet, damaged, or an unknown schema version.
    """
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        check_schema(pf.schema_arrow, source)
        return pf.read(columns=columns)
    except IntegrityError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IntegrityError(f"{source}: damaged record file ({exc.__class__.__name__})") from None
