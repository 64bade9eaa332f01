"""The kill tests' stores on S3 too: a local store's objects copied into a bucket of the loopback moto server.

A store is a flat key space (`storage/base.py`), so a copy of every object is the same store; building it
once on a local folder and copying it per test keeps the S3 variants to the cost of the kills themselves.
The checks read any store through `Store` (list/get), never the filesystem, so one check serves both.
"""

from __future__ import annotations

from pathlib import Path

from faceid_jobs.crypto.parquet_crypto import key_refs
from faceid_jobs.storage.base import Store, open_store
from faceid_jobs.storage.layout import DATA_KEYS_PREFIX, parse_data_key
from faceid_jobs.storage.local import LocalStore

WHERE = ("local", "s3")


def copy_to_s3(root: Path, bucket: str) -> str:
    """Copy every object of the local store at `root` to s3://`bucket`/store; returns that URI."""
    source = LocalStore(root)
    uri = f"s3://{bucket}/store"
    target = open_store(uri)
    keys = list(source.list(""))
    assert keys, f"{root}: an empty store"
    for key in keys:
        target.put(key, source.get(key))
    return uri


def new_bucket(name: str) -> str:
    """Create a fresh bucket on the loopback S3 server (the env the `s3_server` fixture sets); its name."""
    import uuid

    from faceid_jobs.storage.s3 import make_client

    bucket = f"{name}-{uuid.uuid4().hex[:12]}"
    make_client().create_bucket(Bucket=bucket)
    return bucket


def objects(store: Store, prefix: str, suffix: str = "") -> list[str]:
    """Keys under `prefix` ending with `suffix`, sorted."""
    return [k for k in store.list(prefix) if k.endswith(suffix)]


def orphan_keys(store: Store) -> set[str]:
    """Data keys that no object of the store names (a Parquet file by its key metadata, any other by its bytes)."""
    named: set[str] = set()
    blobs = []
    for key in store.list(""):
        if key.startswith(DATA_KEYS_PREFIX):
            continue
        blob = store.get(key)
        if key.endswith(".parquet"):
            named |= key_refs(blob)
        blobs.append(blob)
    refs = {ref for key in store.list(DATA_KEYS_PREFIX) if (ref := parse_data_key(key))}
    return {r for r in refs - named if not any(r.encode() in b for b in blobs)}
