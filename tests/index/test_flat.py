import json

import numpy as np
import pytest

from faceid_jobs.errors import IndexMissingError, IntegrityError
from faceid_jobs.index import build_index, load_index
from faceid_jobs.records import ChunkContext, faces_to_table, table_to_parquet
from faceid_jobs.storage import LocalStore, VideoEntry, save_entry
from faceid_jobs.storage.layout import INDEX_LATEST, record_key
from faceid_jobs.types import Faces

DIM = 16


def unit(rng, n):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def add_video(store, fp, vectors, analysis="an", embedder="emb", uri=None, chunk_rows=3):
    n = len(vectors)
    for c, start in enumerate(range(0, n, chunk_rows)):
        part = vectors[start:start + chunk_rows]
        m = len(part)
        faces = Faces(
            xyxy=np.tile(np.array([[1, 2, 30, 40]], np.float32), (m, 1)),
            score=np.full(m, 0.9, np.float32),
            kps=np.zeros((m, 5, 2), np.float32),
            frame_idx=np.arange(start, start + m, dtype=np.int64),
            embedding=part,
        )
        ctx = ChunkContext(uri or f"{fp}.mp4", fp, c, 10.0, "det", embedder, None, analysis)
        store.put(record_key(analysis, fp, c), table_to_parquet(faces_to_table(faces, ctx)))
    save_entry(store, VideoEntry(fp, uri or f"{fp}.mp4", 10.0, n, 64, 48, analysis, embedder,
                                 chunks=(n + chunk_rows - 1) // chunk_rows))


def test_build_and_search_exact(tmp_path):
    rng = np.random.default_rng(1)
    store = LocalStore(tmp_path)
    a, b = unit(rng, 7), unit(rng, 5)
    add_video(store, "s1-a", a)
    add_video(store, "s1-b", b)
    info = build_index(store, "emb")
    assert (info.vectors, info.dim, info.videos) == (12, DIM, 2)
    index = load_index(store)
    scores, rows = index.search(b[2:3], 3)
    assert scores[0][0] == pytest.approx(1.0, abs=1e-5)
    meta = index.meta.take(rows[0]).to_pydict()
    assert meta["video_fingerprint"][0] == "s1-b" and meta["frame_index"][0] == 2
    brute = np.concatenate([a, b]) @ b[2]
    assert np.allclose(np.sort(brute)[::-1][:3], scores[0], atol=1e-5)


def test_only_current_analysis_and_embedder_are_indexed(tmp_path):
    rng = np.random.default_rng(2)
    store = LocalStore(tmp_path)
    add_video(store, "s1-a", unit(rng, 4), analysis="old")
    add_video(store, "s1-a", unit(rng, 6), analysis="new")  # catalog now says "new"
    add_video(store, "s1-c", unit(rng, 3), embedder="other")
    assert build_index(store, "emb").vectors == 6


def test_rebuild_swaps_pointer_and_keeps_one_previous_build(tmp_path):
    rng = np.random.default_rng(3)
    store = LocalStore(tmp_path)
    add_video(store, "s1-a", unit(rng, 4))
    builds = [build_index(store, "emb").build_id for _ in range(3)]
    kept = {k.split("/")[2] for k in store.list("index/flat/") if k.count("/") == 3}
    assert kept == set(builds[1:])
    assert load_index(store).info.build_id == builds[-1]


def test_missing_and_tampered_index(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(IndexMissingError, match="no index yet"):
        load_index(store)
    add_video(store, "s1-a", unit(np.random.default_rng(4), 4))
    info = build_index(store, "emb")
    key = f"index/flat/{info.build_id}/vectors.faiss"
    blob = bytearray(store.get(key))
    blob[-5] ^= 0xFF
    store.put(key, bytes(blob))
    with pytest.raises(IntegrityError, match="checksum"):
        load_index(store)
    store.delete(key)
    with pytest.raises(IntegrityError, match="missing"):
        load_index(store)
    store.put(INDEX_LATEST, b"{not json")
    with pytest.raises(IntegrityError, match="damaged"):
        load_index(store)


def test_empty_store_builds_empty_index(tmp_path):
    store = LocalStore(tmp_path)
    assert build_index(store, "emb").vectors == 0
    assert len(load_index(store)) == 0
    assert json.loads(store.get(INDEX_LATEST))["vectors"] == 0
