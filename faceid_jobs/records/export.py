"""Write decrypted copies of the stored face records and search results (I/O: store in, local folder out).

For users who want DuckDB, pandas or Spark on the records directly. The
output is plaintext biometric data, so the folder must be private: an
existing folder is used only when it is empty, yours and mode 0700 (unless
`force`), a new one is created 0700, and every file is written 0600 and
atomically (`fileio.atomic_write`: a symlink planted at the temp name or in
place of a video's folder is never followed).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.errors import ConfigError
from faceid_jobs.fileio import atomic_write
from faceid_jobs.records.parquet import parquet_to_table, table_to_parquet
from faceid_jobs.search.stored import RESULT_FILES, list_runs, read_result_file
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.storage.layout import parse_record_key, record_prefix
from faceid_jobs.workspace import Workspace

__all__ = ["ExportResult", "export_plaintext", "prepare_export_folder"]

_PRIVATE = 0o700


@dataclass(frozen=True)
class ExportResult:
    """Record files and their face rows written, search runs whose results were written, and where."""

    files: int
    rows: int
    folder: str
    query_runs: int = 0


def prepare_export_folder(folder: Path, *, force: bool = False) -> Path:
    """Create `folder` 0700, or check an existing one is empty, yours and 0700 (skipped with `force`).

    Raises:
        ConfigError: the folder is not a folder, or is not private and empty
            (and `force` is not set), or cannot be created.
    """
    try:
        folder.mkdir(parents=True, mode=_PRIVATE)
    except FileExistsError:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: exists and is not a folder") from None
        if not force:
            _check_private_and_empty(folder)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot create the export folder ({exc.strerror or exc})") from None
    else:
        os.chmod(folder, _PRIVATE)  # mkdir's mode was narrowed by the umask, never widened
    return folder


def _check_private_and_empty(folder: Path) -> None:
    st = folder.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode != _PRIVATE or st.st_uid != os.getuid():
        raise ConfigError(f"{folder}: export folder must be yours with mode 0700, not {mode:04o} "
                          "(plaintext biometric data; chmod 700 it, or pass --force)")
    if any(folder.iterdir()):
        raise ConfigError(f"{folder}: export folder is not empty (pass --force to write into it)")


def _private_folder(folder: Path, *parts: str) -> Path:
    """`folder/<parts…>`, each level made 0700; an existing symlink there is refused, even with force."""
    path = folder
    for part in parts:
        path = path / part
        try:
            path.mkdir(mode=_PRIVATE)
            os.chmod(path, _PRIVATE)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise ConfigError(f"{path}: exists and is not a plain folder (refusing to write through it)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot create ({exc.strerror or exc})") from None
    return path


def _write(target: Path, data: bytes) -> None:
    try:
        atomic_write(target, data, 0o600)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write ({exc.strerror or exc})") from None


def export_plaintext(ws: Workspace, folder: Path, *, force: bool = False) -> ExportResult:
    """Decrypt the current records of every video into `folder/<fingerprint>/chunk-*.parquet`, and the
    results of every `search-photos` run into `folder/queries/<run id>/` (results.json, hits.parquet).

    Raises:
        ConfigError: the folder is refused (see `prepare_export_folder`) or a
            file cannot be written.
        PendingForgetError: a forget is pending (its person's faces may still be in the records).
    """
    from faceid_jobs.identity.intent import refuse_pending

    refuse_pending(ws.store, "export")
    prepare_export_folder(folder, force=force)
    files = rows = 0
    for entry in list_entries(ws.store, ws.keys):
        for key in ws.store.list(record_prefix(entry.analysis_id, entry.fingerprint)):
            if parse_record_key(key) is None:
                continue  # not a chunk file
            table = parquet_to_table(ws.store.get(key), key, cipher=ws.cipher)
            _write(_private_folder(folder, entry.fingerprint) / key.rsplit("/", 1)[-1], table_to_parquet(table))
            files += 1
            rows += table.num_rows
    runs = list_runs(ws.store)
    for run_id in runs:
        target = _private_folder(folder, "queries", run_id)
        for name in RESULT_FILES:
            _write(target / name, read_result_file(ws, run_id, name))
    return ExportResult(files, rows, str(folder), len(runs))
