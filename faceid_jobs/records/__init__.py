"""Face records: the versioned Arrow schema and its Parquet encoding."""

from faceid_jobs.records.parquet import parquet_to_table, table_to_parquet
from faceid_jobs.records.schema import (
    META_COLUMNS,
    SCHEMA_VERSION,
    ChunkContext,
    check_schema,
    face_id,
    faces_to_table,
    record_schema,
)

__all__ = [
    "META_COLUMNS",
    "SCHEMA_VERSION",
    "ChunkContext",
    "check_schema",
    "face_id",
    "faces_to_table",
    "parquet_to_table",
    "record_schema",
    "table_to_parquet",
]
