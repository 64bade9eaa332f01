"""The kill tests' stores on S3 too: a local store's objects copied into a bucket of the loopback moto server.

A store is a flat key space (`storage/base.py`), so a copy of every object is the same store; building it
once on a local folder and copying it per test keeps the S3 variants to the cost of the kills themselves.
The checks read any store through `Store` (list/get), never the filesystem, so one check serves both.
"""

from __future__ import annotations

from pathlib import Path

from faceid_jobs.storage.base import Store, open_store
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


def objects(store: Store, prefix: str, suffix: str = "") -> list[str]:
    """Keys under `prefix` ending with `suffix`, sorted."""
    return [k for k in store.list(prefix) if k.endswith(suffix)]
