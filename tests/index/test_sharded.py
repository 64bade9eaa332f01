"""Versioned encrypted shards: merge, search, integrity, concurrency, gc, recall."""

from __future__ import annotations

import base64
import json
import os
import threading

import numpy as np
import pytest

from faceid_jobs.errors import IndexMissingError, IntegrityError, KeyMismatchError
from faceid_jobs.index import IndexParams, list_versions, load_manifest, merge_index, open_index
from faceid_jobs.index.gc import collect_garbage
from faceid_jobs.index.manifest import manifest_key
from faceid_jobs.index.shard import build_faiss
from faceid_jobs.records import ChunkContext, faces_to_table, table_to_parquet
from faceid_jobs.storage import VideoEntry, save_entry
from faceid_jobs.storage.layout import record_key
from faceid_jobs.types import Faces

DIM = 16


def unit(rng, n, dim=DIM):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def add_video(ws, fp, vectors, analysis="an", embedder="emb", chunk_rows=3):
    n = len(vectors)
    chunks = max(1, (n + chunk_rows - 1) // chunk_rows)
    for c in range(chunks):
        part = vectors[c * chunk_rows:(c + 1) * chunk_rows]
        m = len(part)
        faces = Faces(
            xyxy=np.tile(np.array([[1, 2, 30, 40]], np.float32), (m, 1)),
            score=np.full(m, 0.9, np.float32),
            kps=np.zeros((m, 5, 2), np.float32),
            frame_idx=np.arange(c * chunk_rows, c * chunk_rows + m, dtype=np.int64),
            embedding=part.reshape(m, vectors.shape[1]),
        )
        ctx = ChunkContext(f"{fp}.mp4", fp, c, 10.0, "det", embedder, None, analysis)
        key = record_key(analysis, fp, c)
        ws.store.put(key, table_to_parquet(faces_to_table(faces, ctx), ws.cipher, key=key))
    save_entry(ws.store, VideoEntry(fp, f"{fp}.mp4", 10.0, max(n, 1), 64, 48, analysis, embedder, chunks), ws.keys)


def test_merge_search_and_incremental_versions(make_workspace):
    rng = np.random.default_rng(1)
    ws = make_workspace()
    a, b = unit(rng, 7), unit(rng, 5)
    add_video(ws, "s1-a", a)
    first = merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    assert (first.version, first.published, first.vectors) == (1, True, 7)
    # Nothing new: no version, nothing written.
    before = sorted(ws.store.list(""))
    assert merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher).published is False
    assert sorted(ws.store.list("")) == before
    add_video(ws, "s1-b", b)
    second = merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    assert (second.version, second.shards_kept, second.shards_added, second.vectors) == (2, 1, 1, 12)
    index = open_index(ws.store, ws.keys)
    assert index.info.shards == 2 and len(index) == 12
    scores, rows = index.search(b[2:3], 3)
    assert scores[0][0] == pytest.approx(1.0, abs=1e-5)
    meta = index.meta.take(rows[0]).to_pydict()
    assert meta["video_fingerprint"][0] == "s1-b" and meta["frame_index"][0] == 2
    brute = np.sort(np.concatenate([a, b]) @ b[2])[::-1][:3]
    assert np.allclose(brute, scores[0], atol=1e-5)
    assert len(open_index(ws.store, ws.keys, version=1)) == 7


def test_reanalysed_video_replaces_its_shard(make_workspace):
    rng = np.random.default_rng(2)
    ws = make_workspace()
    add_video(ws, "s1-a", unit(rng, 4), analysis="old")
    add_video(ws, "s1-c", unit(rng, 3), embedder="other")
    assert merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher).vectors == 4
    add_video(ws, "s1-a", unit(rng, 6), analysis="new")
    assert merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher).vectors == 6


def test_small_shards_are_compacted(make_workspace):
    rng = np.random.default_rng(3)
    ws = make_workspace()
    for i in range(5):
        add_video(ws, f"s1-{i}", unit(rng, 2))
        merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher, max_small=3)
    manifest = load_manifest(ws.store, ws.keys)
    assert len(manifest.shards) <= 4 and manifest.vectors == 10


def test_concurrent_merges_publish_one_version_each(make_workspace):
    rng = np.random.default_rng(4)
    ws = make_workspace()
    add_video(ws, "s1-a", unit(rng, 5))
    merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    for i in range(4):
        add_video(ws, f"s1-n{i}", unit(rng, 3))
    barrier = threading.Barrier(4)
    results, errors = [], []
    seen_by_readers = []
    stop = threading.Event()

    def merge():
        barrier.wait()
        try:
            results.append(merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    def read():
        while not stop.is_set():
            idx = open_index(ws.store, ws.keys)
            assert idx.meta.num_rows == len(idx) == load_manifest(ws.store, ws.keys, idx.info.version).vectors
            seen_by_readers.append(idx.info.version)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=merge) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    assert not errors
    published = [r.version for r in results if r.published]
    assert len(published) == len(set(published)) and list_versions(ws.store) == sorted(
        set(published) | {1})
    final = open_index(ws.store, ws.keys)
    assert len(final) == 17
    assert seen_by_readers == sorted(seen_by_readers)


def test_tampering_is_detected(make_workspace):
    rng = np.random.default_rng(5)
    ws = make_workspace()
    add_video(ws, "s1-a", unit(rng, 5))
    merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    manifest = load_manifest(ws.store, ws.keys)
    shard_key = manifest.shards[0].key
    good = ws.store.get(shard_key)

    bad = bytearray(good)
    bad[len(bad) // 2] ^= 1
    ws.store.put(shard_key, bytes(bad))
    with pytest.raises(IntegrityError, match="tampered|checksum"):
        open_index(ws.store, ws.keys)
    ws.store.put(shard_key, good[:-10])
    with pytest.raises(IntegrityError, match="truncated|checksum"):
        open_index(ws.store, ws.keys)
    ws.store.delete(shard_key)
    with pytest.raises(IntegrityError, match="missing"):
        open_index(ws.store, ws.keys)
    ws.store.put(shard_key, good)
    assert len(open_index(ws.store, ws.keys)) == 5

    # Another version's shard put in place of this one.
    add_video(ws, "s1-b", unit(rng, 2))
    merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher, max_small=0)
    other = load_manifest(ws.store, ws.keys).shards[-1]
    ws.store.put(shard_key, ws.store.get(other.key))
    with pytest.raises(IntegrityError):
        open_index(ws.store, ws.keys, version=1)
    ws.store.put(shard_key, good)

    # Manifest edited, and an old manifest replayed as a newer version.
    raw = ws.store.get(manifest_key(1))
    edited = json.loads(raw)
    edited["manifest"]["shards"][0]["vectors"] = 4
    ws.store.put(manifest_key(1), json.dumps(edited).encode())
    with pytest.raises(IntegrityError, match="tampered"):
        load_manifest(ws.store, ws.keys, 1)
    ws.store.put(manifest_key(1), raw)
    ws.store.put(manifest_key(3), raw)
    with pytest.raises(IntegrityError, match="replayed"):
        open_index(ws.store, ws.keys)


def test_wrong_key_is_refused(make_workspace):
    rng = np.random.default_rng(6)
    ws = make_workspace()
    add_video(ws, "s1-a", unit(rng, 3))
    merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    with pytest.raises(KeyMismatchError, match="needs key"):  # refused when the workspace opens
        make_workspace(store=ws.store)
    # Past that check (a caller building its own keys), the index still refuses the wrong key.
    from faceid_jobs.crypto.envelope import DataKeys
    from faceid_jobs.crypto.keys import Keyring, kek_from_env

    stranger = DataKeys(ws.store, Keyring([kek_from_env(base64.b64encode(os.urandom(32)).decode())]))
    with pytest.raises(IntegrityError, match="wrong key"):
        open_index(ws.store, stranger)


def test_no_index_yet(make_workspace):
    ws = make_workspace()
    with pytest.raises(IndexMissingError, match="no index yet"):
        open_index(ws.store, ws.keys)


def test_gc_keeps_newest_versions_and_their_shards(make_workspace):
    rng = np.random.default_rng(7)
    ws = make_workspace()
    for i in range(4):
        add_video(ws, f"s1-{i}", unit(rng, 2))
        merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher, max_small=1)
    result = collect_garbage(ws.store, ws.keys, keep=2)
    assert result.versions_kept == (3, 4) and result.versions_deleted == (1, 2)
    assert result.shards_deleted >= 1
    for v in (3, 4):
        assert len(open_index(ws.store, ws.keys, version=v)) == 2 * v
    with pytest.raises(IndexMissingError):
        open_index(ws.store, ws.keys, version=1)


def test_ivf_recall_at_10_on_200k_vectors():
    """Large shards switch to IVF + HNSW; recall@10 against exact search >= 0.95."""
    rng = np.random.default_rng(8)
    dim, n, clusters = 128, 200_000, 2_000
    # Faces cluster by identity: a mixture of tight clusters, not uniform noise.
    centres = unit(rng, clusters, dim)
    data = centres[rng.integers(0, clusters, n)] + rng.normal(scale=0.08, size=(n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[rng.choice(n, 200, replace=False)] + rng.normal(scale=0.05, size=(200, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index, kind = build_faiss(data, IndexParams(exact_max=50_000, nprobe=32))
    assert kind.startswith("ivf")
    exact, _ = build_faiss(data, IndexParams(exact_max=n))
    _, truth = exact.search(queries, 10)
    _, approx = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approx, truth, strict=True)])
    assert recall >= 0.95, recall
