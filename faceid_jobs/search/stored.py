"""Search results kept in the store by the `search-photos` flow, sealed like the faces (I/O on the store).

A run's results say where and when the person in each photo appears: as
sensitive as the faces themselves, so they are never stored in the clear.
Each run writes two files under ``queries/<run id>/``, each a sealed
container (``<name>.bin``) (`crypto/stream`, AES-256-GCM under its own data key) whose header
binds it to its run and file name, so a file moved to another run or name
does not open:

- ``results.json``: the whole document (every query, its hits, the failures);
- ``hits.parquet``: one row per hit (`HIT_COLUMNS`), for DuckDB or pandas
  once decrypted (`faceid-jobs export --plaintext` writes both in the clear).
"""

from __future__ import annotations

import io
import json
from typing import Any

from faceid_jobs.crypto.stream import open_sealed, seal
from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import QUERIES_PREFIX, parse_query_result_key, query_result_key
from faceid_jobs.workspace import Workspace

__all__ = ["HIT_COLUMNS", "RESULT_FILES", "hits_parquet", "list_runs", "read_result_file", "read_results",
           "result_keys", "write_results"]

FORMAT = 1
_KIND = "query-result"
_FILES = {"json": "results.json", "parquet": "hits.parquet"}  # what `result_keys` names by kind
RESULT_FILES = tuple(_FILES.values())
HIT_COLUMNS = ("photo", "rank", "similarity", "video", "timestamp_s", "start_s", "end_s", "frame", "bbox",
               "face_id", "track_id", "liveness", "quality", "query_bbox", "query_det_score", "index_build_id")


def result_keys(run_id: str) -> dict[str, str]:
    """Store keys of one run's results: ``{"json": …, "parquet": …}``."""
    return {kind: query_result_key(run_id, name) for kind, name in _FILES.items()}


def write_results(ws: Workspace, run_id: str, document: dict[str, Any]) -> dict[str, str]:
    """Seal and store a run's results document and its hits table; returns their keys (`result_keys`)."""
    body = {"parquet": hits_parquet(document["results"]),
            "json": json.dumps({"format": FORMAT} | document, indent=1, default=str).encode()}
    keys = result_keys(run_id)
    for kind, name in _FILES.items():
        ref, dek = ws.keys.create()
        ws.store.put(keys[kind], seal(body[kind], dek, {"kind": _KIND, "run_id": run_id, "file": name, "key_ref": ref}))
    return keys


def read_result_file(ws: Workspace, run_id: str, name: str) -> bytes:
    """The plaintext of one result file (`RESULT_FILES`) of a run.

    Raises:
        KeyError: the run has no such file.
        IntegrityError: the file was changed, moved from another run or name, or needs another key.
    """
    key = query_result_key(run_id, name)
    return open_sealed(ws.store.get(key), ws.keys.sealed_key(key), key, {"kind": _KIND, "run_id": run_id, "file": name})


def read_results(ws: Workspace, run_id: str) -> dict[str, Any]:
    """A run's results document, as the flow returned it (plus its ``format``).

    Raises:
        KeyError: no results for this run.
        IntegrityError: see `read_result_file`.
    """
    name = query_result_key(run_id, "results.json")
    try:
        document = json.loads(read_result_file(ws, run_id, "results.json"))
    except ValueError:
        raise IntegrityError(f"{name}: damaged results document") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise IntegrityError(f"{name}: unknown results format")
    return document


def list_runs(store: Store) -> list[str]:
    """Run ids with results in the store, sorted."""
    return sorted({parsed[0] for key in store.list(QUERIES_PREFIX)
                   if (parsed := parse_query_result_key(key)) is not None and parsed[1] in RESULT_FILES})


def hits_parquet(results: list[dict[str, Any]]) -> bytes:
    """zstd Parquet, one row per hit (a face, or an appearance when the index is by
    track: then `start_s`, `end_s` and `track_id` are set), columns `HIT_COLUMNS`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bbox = pa.list_(pa.float32(), 4)
    schema = pa.schema([
        ("photo", pa.string()), ("rank", pa.int32()), ("similarity", pa.float32()),
        ("video", pa.string()), ("timestamp_s", pa.float64()), ("start_s", pa.float64()),
        ("end_s", pa.float64()), ("frame", pa.int64()), ("bbox", bbox), ("face_id", pa.string()),
        ("track_id", pa.int64()), ("liveness", pa.float32()), ("quality", pa.float32()),
        ("query_bbox", bbox), ("query_det_score", pa.float32()), ("index_build_id", pa.string()),
    ])
    rows: dict[str, list[Any]] = {name: [] for name in HIT_COLUMNS}
    for result in results:
        query = result["query"]
        for rank, hit in enumerate(result["hits"], 1):
            values = {**hit, "photo": query["photo"], "rank": rank, "query_bbox": query["bbox"],
                      "query_det_score": query["det_score"], "index_build_id": result["index"]["build_id"]}
            for name in HIT_COLUMNS:
                rows[name].append(values.get(name))
    sink = io.BytesIO()
    pq.write_table(pa.table(rows, schema=schema), sink, compression="zstd")
    return sink.getvalue()
