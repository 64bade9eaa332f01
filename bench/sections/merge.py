"""Merge: what a merge into encrypted shards cannot beat (decrypt, FAISS build/add, AES-GCM)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bench.timing import clock


def _merge_floors(ws, vecs: np.ndarray, shards: list, params, runs: int) -> dict[str, Any]:
    """What a merge cannot beat: decrypting the record files, FAISS building the same kinds of
    index over the same vectors (train + add, and add alone into the trained index), and AES-GCM
    over as many bytes as the shards hold (cryptography's AESGCM, 1 MiB segments)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from faceid_jobs.index.shard import build_faiss
    from faceid_jobs.records import parquet_to_table

    out: dict[str, Any] = {}
    sources = sorted({src for s in shards for src in s.sources})
    t0 = clock()
    for key in sources:
        parquet_to_table(ws.store.get(key), key, cipher=ws.cipher)
    out["read_records_s"] = clock() - t0
    build, add, built = 0.0, 0.0, []
    start = 0
    for s in shards:  # the same shard sizes, so the same kinds of index
        part = np.ascontiguousarray(vecs[start:start + s.vectors])
        start += s.vectors
        t0 = clock()
        index, kind = build_faiss(part, params)
        build += clock() - t0
        index.reset()  # keeps the training: what is left is FAISS `add`
        t0 = clock()
        index.add(part)
        add += clock() - t0
        built.append((index, kind))
    out["faiss_build_s"] = build
    out["faiss_add_s"] = add
    out["faiss_kinds"] = sorted({k for _, k in built})
    total = sum(s.size for s in shards)
    aead = AESGCM(AESGCM.generate_key(256))
    segment = os.urandom(1 << 20)
    aes = []
    for _ in range(runs):
        t0 = clock()
        for i in range(-(-total // len(segment))):
            aead.encrypt(i.to_bytes(12, "big"), segment, b"")
        aes.append(clock() - t0)
    out["aes_gcm_bytes"] = total
    out["aes_gcm_s"] = min(aes)
    out["aes_gcm_mib_per_s"] = total / 2**20 / min(aes)
    out["indexes"] = built  # the in-memory indexes, for the same-kind search floor; dropped by the caller
    return out
