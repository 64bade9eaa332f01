"""IVF shards: what build_faiss makes above exact_max, and search across IVF and exact shards."""

from __future__ import annotations

import faiss
import numpy as np
import pyarrow as pa
import pytest

from faceid_jobs.index import IndexParams, load_manifest, merge_index, open_index, shard
from faceid_jobs.index.manifest import Manifest
from faceid_jobs.index.shard import (
    IVF_KMEANS_ITERATIONS,
    IVF_TRAIN_MAX,
    IVF_TRAIN_PER_LIST,
    build_faiss,
    ivf_lists,
    ivf_training_sample,
    read_shard,
    write_shard,
)
from faceid_jobs.index.sharded import ShardedIndex, ShardRows
from faceid_jobs.records import ChunkContext, faces_to_table
from faceid_jobs.types import Faces
from tests.index.test_sharded import add_video


def clustered(rng, n, dim, people, face_cos=0.75):
    """Face-like unit vectors: `people` identities, each face at cosine ≈ face_cos from its centre."""
    centres = rng.normal(size=(people, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    who = rng.integers(0, people, n)
    sigma = np.sqrt((1 / face_cos**2 - 1) / dim)
    data = centres[who] + rng.normal(scale=sigma, size=(n, dim)).astype(np.float32)
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32), who, centres


def test_ivf_lists_and_training_sample_are_bounded():
    assert ivf_lists(500_000) == 1060  # 1.5·√n
    assert ivf_lists(200_001) == 670
    assert ivf_lists(10_000) == 150 and ivf_lists(1_000) == 64  # at least 64 lists ...
    assert ivf_lists(100) == 25  # ... but never more than n/4
    assert ivf_lists(10**9) == 4096
    vectors = np.arange(40_000, dtype=np.float32).reshape(-1, 1)
    sample = ivf_training_sample(vectors, 100)
    assert len(sample) == IVF_TRAIN_PER_LIST * 100
    assert len(np.unique(sample)) == len(sample)  # drawn without replacement
    assert np.array_equal(sample, ivf_training_sample(vectors, 100))  # seeded: the same shard, the same index
    assert ivf_training_sample(vectors, 1000) is vectors  # all of them when the sample would be larger
    big = np.zeros((IVF_TRAIN_MAX + 5_000, 1), np.float32)
    assert len(ivf_training_sample(big, 4096)) == IVF_TRAIN_MAX


@pytest.mark.parametrize("codec", ["sq8", "flat"])
def test_shard_above_exact_max_is_ivf_with_an_exact_quantizer(codec, monkeypatch):
    rng = np.random.default_rng(11)
    n, dim = 12_000, 32
    data, _, _ = clustered(rng, n, dim, 150)
    trained_on = []

    def sample(vectors, nlist):
        trained_on.append(len(out := ivf_training_sample(vectors, nlist)))
        return out

    monkeypatch.setattr(shard, "ivf_training_sample", sample)
    index, kind = build_faiss(data, IndexParams(exact_max=5_000, ivf_codec=codec, nprobe=7))
    nlist = ivf_lists(n)
    assert trained_on == [IVF_TRAIN_PER_LIST * nlist] and trained_on[0] < n  # k-means on a sample only
    assert kind == f"ivf{nlist}-{codec}"
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nlist == nlist and ivf.nprobe == 7 and index.ntotal == n
    assert ivf.cp.niter == IVF_KMEANS_ITERATIONS
    quantizer = faiss.downcast_index(ivf.quantizer)  # exact, not HNSW
    assert type(quantizer) in (faiss.IndexFlat, faiss.IndexFlatIP)
    assert quantizer.metric_type == faiss.METRIC_INNER_PRODUCT and quantizer.ntotal == nlist
    expected = faiss.IndexIVFScalarQuantizer if codec == "sq8" else faiss.IndexIVFFlat
    assert isinstance(faiss.downcast_index(index), expected)
    assert build_faiss(data[:5_000], IndexParams(exact_max=5_000))[1] == "flat"
    with pytest.raises(ValueError, match="ivf_codec"):
        build_faiss(data, IndexParams(exact_max=5_000, ivf_codec="fp4"))


def test_ivf_finds_planted_near_duplicates():
    rng = np.random.default_rng(12)
    n, dim = 20_000, 64
    data, _, _ = clustered(rng, n, dim, 300)
    planted = rng.choice(n, 50, replace=False)
    queries = data[planted] + rng.normal(scale=0.02, size=(50, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index, kind = build_faiss(data, IndexParams(exact_max=1_000, ivf_codec="sq8", nprobe=16))
    assert kind.startswith("ivf")
    scores, ids = index.search(queries, 5)
    assert (ids[:, 0] == planted).all()
    assert np.allclose(scores[:, 0], np.einsum("ij,ij->i", data[planted], queries), atol=0.02)


def test_ivf_finds_the_faces_of_a_person():
    """Face-like data: nearly every face above the 0.4 threshold is found, as exact search finds it."""
    rng = np.random.default_rng(13)
    n, dim = 30_000, 128
    data, _, centres = clustered(rng, n, dim, 500)
    people = rng.choice(500, 40, replace=False)
    sigma = np.sqrt((1 / 0.75**2 - 1) / dim)
    queries = centres[people] + rng.normal(scale=sigma, size=(40, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index, _ = build_faiss(data, IndexParams(exact_max=1_000, ivf_codec="sq8", nprobe=32))
    _, ids = index.search(queries, 128)
    exact = queries @ data.T
    found = [len(set(ids[i]) & set(np.flatnonzero(exact[i] >= 0.4))) / (exact[i] >= 0.4).sum()
             for i in range(len(queries))]
    assert np.mean(found) >= 0.95, np.mean(found)


def test_search_across_ivf_and_exact_shards_matches_brute_force(make_workspace):
    rng = np.random.default_rng(14)
    dim = 16
    data, _, _ = clustered(rng, 5_000, dim, 60)
    ws = make_workspace()
    for v in range(5):
        add_video(ws, f"s1-v{v}", data[v * 1_000:(v + 1) * 1_000], chunk_rows=500)
    # shards of 2,000 vectors (IVF above 1,500) and a last one of 1,000 (exact)
    params = IndexParams(exact_max=1_500, ivf_codec="flat", nprobe=8, shard_max=2_000)
    merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher, params=params)
    kinds = sorted(s.kind for s in load_manifest(ws.store, ws.keys).shards)
    assert kinds == ["flat", f"ivf{ivf_lists(2_000)}-flat", f"ivf{ivf_lists(2_000)}-flat"]
    queries = data[rng.choice(5_000, 30, replace=False)]
    brute = np.sort(queries @ data.T, axis=1)[:, ::-1][:, :10]
    # every list probed: IVF with flat codes is exact, so the merged top-k is brute force's
    index = open_index(ws.store, ws.keys, nprobe=ivf_lists(2_000))
    scores, rows = index.search(queries, 10)
    assert np.allclose(scores, brute, atol=1e-5)
    embeddings = {fid: data[int(fp[-1]) * 1_000 + int(frame)]
                  for fid, fp, frame in zip(index.meta.column("face_id").to_pylist(),
                                            index.meta.column("video_fingerprint").to_pylist(),
                                            index.meta.column("frame_index").to_pylist(), strict=True)}
    got = np.array([[embeddings[f] @ q for f in index.meta.take(r).column("face_id").to_pylist()]
                    for q, r in zip(queries, rows, strict=True)])
    assert np.allclose(got, scores, atol=1e-5)  # rows point at the vectors that were scored
    # the default few lists: each query still finds itself first, whichever shard holds it
    few = open_index(ws.store, ws.keys, nprobe=8)
    scores, _ = few.search(queries, 10)
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert few.info.videos == 5 and len(few) == 5_000


def test_old_hnsw_quantizer_shards_still_load(make_workspace):
    """Shards of earlier versions (kind "ivf<nlist>-hnsw-<codec>") are read and searched as before."""
    rng = np.random.default_rng(15)
    dim, n = 16, 3_000
    data, _, _ = clustered(rng, n, dim, 40)
    old = faiss.index_factory(dim, "IVF64,Flat", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(old)
    ivf.quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    ivf.own_fields = True
    old.train(data)
    old.add(data)
    ws = make_workspace()
    ctx = ChunkContext("v.mp4", "s1-v", 0, 10.0, "det", "emb", None, "an")
    faces = Faces(xyxy=np.zeros((n, 4), np.float32), score=np.ones(n, np.float32),
                  kps=np.zeros((n, 5, 2), np.float32), frame_idx=np.arange(n), embedding=data)
    meta = faces_to_table(faces, ctx).drop_columns(["embedding"])
    ref = write_shard(ws.store, ws.keys, old, meta, kind="ivf64-hnsw-flat", created_version=1, sources=())
    index, _ = read_shard(ws.store.open_read(ref.key), ws.keys, ref)
    assert isinstance(faiss.downcast_index(faiss.extract_index_ivf(index).quantizer), faiss.IndexHNSWFlat)
    manifest = Manifest(version=1, parent=None, created_at="", embedder_id="emb", dim=dim, index_by="face",
                        shards=(ref,), kek_id="k")
    sharded = ShardedIndex(manifest, [read_shard(ws.store.open_read(ref.key), ws.keys, ref)], nprobe=64)
    scores, rows = sharded.search(data[:5], 1)
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5) and rows[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_shard_rows_take_matches_the_concatenated_table():
    rng = np.random.default_rng(16)
    tables = [pa.table({"row": np.arange(start, start + size), "name": [f"r{i}" for i in range(start, start + size)]})
              for start, size in ((0, 5), (5, 1), (6, 7))]
    rows = ShardRows(tables)
    whole = pa.concat_tables(tables)
    assert rows.num_rows == len(rows) == 13 and rows.column_names == ["row", "name"]
    assert rows.to_pydict() == whole.to_pydict()
    for pick in ([12, 0, 5, 5, 3], rng.integers(0, 13, 30), [], np.array([7])):
        assert rows.take(np.asarray(pick, np.int64)).to_pydict() == whole.take(pa.array(pick, pa.int64())).to_pydict()
    with pytest.raises(IndexError):
        rows.take([13])
    with pytest.raises(IndexError):
        rows.take([-1])
