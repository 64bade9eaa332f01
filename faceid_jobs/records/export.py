"""Write decrypted copies of the stored face records (I/O: store in, local folder out).

For users who want DuckDB, pandas or Spark on the records directly. The
output is plaintext biometric data: the folder is created 0700, files 0600,
and every file is written atomically (temp name, then rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.records.parquet import parquet_to_table, table_to_parquet
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.storage.layout import record_prefix
from faceid_jobs.workspace import Workspace

__all__ = ["ExportResult", "export_plaintext"]


@dataclass(frozen=True)
class ExportResult:
    files: int
    rows: int
    folder: str


def export_plaintext(ws: Workspace, folder: Path) -> ExportResult:
    """Decrypt the current records of every video into `folder/<fingerprint>/chunk-*.parquet`."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = rows = 0
    for entry in list_entries(ws.store):
        for key in ws.store.list(record_prefix(entry.analysis_id, entry.fingerprint)):
            table = parquet_to_table(ws.store.get(key), key, cipher=ws.cipher)
            target = folder / entry.fingerprint / key.rsplit("/", 1)[-1]
            target.parent.mkdir(exist_ok=True, mode=0o700)
            tmp = target.with_name(f".tmp-{target.name}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(table_to_parquet(table))
            os.replace(tmp, target)
            files += 1
            rows += table.num_rows
    return ExportResult(files, rows, str(folder))
