"""Search: warm in-process latency over synthetic stores next to bare FAISS, recall,
and the cold `faceid-jobs search` command (wall, peak RSS) via bench/timing.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    DEFAULT_PORTRAIT,
    log,
    percentiles,
    stats,
)
from bench.sections.context import Context
from bench.sections.merge import _merge_floors
from bench.timing import clock, run_command

SEARCH_K = 20  # top-k of the latency figures (the CLI's default)
ABOVE_K = 128  # k of the "above threshold found" figure: more than the most faces an identity has (100)
SEARCH_THRESHOLD = 0.4  # the CLI's default threshold
NPROBE_SWEEP = (32, 64, 128, 256)


def _run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit code, stdout or the error's last line) of one command."""
    m = run_command(cmd, env=env)
    if not m.ok:
        log(f"child failed ({m.returncode}): {' '.join(cmd[:3])} ...: {m.error_line()}")
        return m.wall_s, m.peak_rss_mib, m.returncode, m.error_line()
    return m.wall_s, m.peak_rss_mib, 0, m.stdout


def _search_queries(syn, count: int, seed: int) -> np.ndarray:
    """Queries for a synthetic store: fresh faces of stored identities ("faces" data), or stored
    vectors plus noise, cosine ≈ 0.78 with their source ("uniform" data)."""
    from bench.synthetic import identity_queries

    if syn.faces is not None:
        return identity_queries(syn.faces, count, seed)[0]
    rng = np.random.default_rng(seed)
    vecs = syn.vectors
    queries = vecs[rng.integers(0, len(vecs), count)] + rng.standard_normal(
        (count, vecs.shape[1])).astype(np.float32) * 0.035
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def _exact_truth(vecs: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-ABOVE_K (scores, vector ids) of every query (faiss.knn: no copy of the vectors)."""
    import faiss

    return faiss.knn(queries, vecs, ABOVE_K, metric=faiss.METRIC_INNER_PRODUCT)


def _quality(found: np.ndarray, truth_scores: np.ndarray, truth_ids: np.ndarray) -> dict[str, float]:
    """recall@20 vs exact and the share of above-threshold vectors found, from top-ABOVE_K vector ids.

    `found` (q, ABOVE_K) holds the searched index's results as vector ids (-1: none), best first.
    """
    recall, above_found, above_n, capped = [], [], [], 0
    for got, ts, ti in zip(found, truth_scores, truth_ids, strict=True):
        recall.append(len(set(got[:SEARCH_K].tolist()) & set(ti[:SEARCH_K].tolist())) / SEARCH_K)
        above = set(ti[ts >= SEARCH_THRESHOLD].tolist())
        capped += int(ts[-1] >= SEARCH_THRESHOLD)
        if above:
            above_found.append(len(above & set(got.tolist())) / len(above))
            above_n.append(len(above))
    return {"recall_at_20_vs_exact": float(np.mean(recall)),
            "above_threshold_found_share": float(np.mean(above_found)) if above_found else float("nan"),
            "above_threshold_mean_count": float(np.mean(above_n)) if above_n else 0.0,
            "queries_with_more_than_k_above": capped}


def _search_rows(index, queries: np.ndarray, to_vec: np.ndarray, k: int) -> np.ndarray:
    """The index's top-k of each query as synthetic vector ids (-1 for none)."""
    _, rows = index.search(queries, k)
    return np.where(rows >= 0, to_vec[np.maximum(rows, 0)], -1)


def _floor_search(indexes: list, q: np.ndarray, k: int) -> np.ndarray:
    """Top-k over several bare FAISS indexes, searched one after another like the shards."""
    scores = np.concatenate([idx.search(q, min(k, idx.ntotal))[0] for idx in indexes], axis=1)
    return np.sort(scores, axis=1)[:, ::-1][:, :k]


def _ivf_in_memory(data: str, n: int, params, seed: int = 11) -> dict[str, Any]:
    """An IVF shard over n vectors built in memory whatever exact_max says: recall on `data`."""
    from bench.synthetic import SyntheticRecords, face_vectors, unit_vectors
    from faceid_jobs.index.shard import IndexParams, build_faiss

    faces = face_vectors(n, 512, seed) if data == "faces" else None
    vecs = faces.vectors if faces is not None else unit_vectors(n, 512, seed)
    syn = SyntheticRecords(vecs, [], 0.0, 0, 0, faces)
    queries = _search_queries(syn, 300, seed + 1)
    t0 = clock()
    index, kind = build_faiss(vecs, IndexParams(exact_max=0, ivf_codec=params.ivf_codec, nprobe=params.nprobe))
    build_s = clock() - t0
    ts, ti = _exact_truth(vecs, queries)
    lat = []
    for q in queries:
        t0 = clock()
        index.search(q[None], SEARCH_K)
        lat.append(clock() - t0)
    found = index.search(queries, ABOVE_K)[1]
    out = {"data": data, "vectors": n, "kind": kind, "nprobe": params.nprobe, "build_s": build_s,
           "search": percentiles(lat), **_quality(found, ts, ti)}
    del index
    return out


def run(ctx: Context) -> dict[str, Any]:
    import faiss
    import pyarrow as pa
    import pyarrow.compute as pc

    from bench.synthetic import make_index_store
    from faceid_jobs.index import index_params, load_manifest, merge_index, open_index
    from faceid_jobs.models.runtime import file_sha256
    from faceid_jobs.photo import PhotoFace
    from faceid_jobs.search.query import Query, search_index

    a = ctx.args
    embedder_id = _embedder_id(ctx, file_sha256)
    params = index_params(ctx.settings)
    out: dict[str, Any] = {
        "embedder_id": embedder_id, "faiss_omp_threads": faiss.omp_get_max_threads(),
        "index_params": {"exact_max": params.exact_max, "ivf_codec": params.ivf_codec,
                         "nprobe": params.nprobe, "shard_max": params.shard_max},
        "data": "faces: identities of 20-100 faces, cos(face, centre) 0.75; queries are fresh faces of "
                "stored identities (bench/synthetic.py face_vectors)",
        "k": SEARCH_K, "above_threshold_k": ABOVE_K, "threshold": SEARCH_THRESHOLD,
        "sizes": {},
    }
    cli = ctx.cli()
    if cli is None:
        out["cli"] = "not measured: .venv/bin/faceid-jobs does not exist (package not installed)"
    for n in a.search_sizes:
        videos = 4 if n <= 10_000 else (10 if n <= 100_000 else 20)
        root = ctx.tmp / f"search-{n}"
        ws = ctx.workspace(root)
        log(f"search: writing {n:,} synthetic face records in {videos} videos")
        # big stores in bigger record files: fewer files (and data keys) to write and merge
        syn = make_index_store(ws, n, embedder_id=embedder_id, videos=videos,
                               rows_per_chunk=5000 if n <= 100_000 else 20_000)
        log(f"search: merging {n:,} vectors into encrypted shards")
        t0 = clock()
        merged = merge_index(ws.store, ws.keys, embedder_id, cipher=ws.cipher, params=params)
        merge_s = clock() - t0
        shards = list(load_manifest(ws.store, ws.keys).shards)
        log(f"search: merge floors over {n:,} vectors (records, FAISS build, AES-GCM)")
        floors = _merge_floors(ws, syn.vectors, shards, params, a.runs)
        same_kind = [idx for idx, _ in floors.pop("indexes")]
        vecs = syn.vectors
        q_count = 300 if n <= 100_000 else 100
        queries = _search_queries(syn, q_count, seed=3)
        truth_scores, truth_ids = _exact_truth(vecs, queries)

        load_s = []
        for _ in range(a.runs):
            t0 = clock()
            index = open_index(ws.store, ws.keys, nprobe=params.nprobe)
            load_s.append(clock() - t0)
        # index rows → the synthetic vector they hold (the merge orders rows by record file)
        found_at = pc.index_in(index.meta.column("face_id"), value_set=pa.array(syn.face_ids))
        assert found_at.null_count == 0, "index rows that the synthetic store did not write"
        to_vec = np.asarray(found_at.to_numpy(), np.int64)
        qf = PhotoFace(photo="synthetic", bbox=(0.0, 0.0, 1.0, 1.0), det_score=1.0, face_index=0,
                       faces_in_photo=1)
        floor = faiss.IndexFlatIP(vecs.shape[1])
        floor.add(vecs)
        for q in queries[:3]:  # warm-up
            index.search(q[None], SEARCH_K)
            floor.search(q[None], SEARCH_K)
            _floor_search(same_kind, q[None], SEARCH_K)
        raw_lat, full_lat, floor_lat, kind_lat, hits = [], [], [], [], []
        floor_queries = q_count if n <= 100_000 else 30  # exact search at 1M: ~0.1-0.3 s a query
        for i, q in enumerate(queries):
            if i < floor_queries:
                t0 = clock()
                floor.search(q[None], SEARCH_K)
                floor_lat.append(clock() - t0)
            t0 = clock()
            _floor_search(same_kind, q[None], SEARCH_K)
            kind_lat.append(clock() - t0)
            t0 = clock()
            index.search(q[None], SEARCH_K)
            raw_lat.append(clock() - t0)
            t0 = clock()
            res = search_index(Query(qf, q, embedder_id), index, top_k=SEARCH_K, threshold=SEARCH_THRESHOLD)
            full_lat.append(clock() - t0)
            hits.append(len(res.hits))
        del floor
        quality = _quality(_search_rows(index, queries, to_vec, ABOVE_K), truth_scores, truth_ids)
        kinds = sorted({s.kind for s in shards})
        sweep: dict[str, Any] = {}
        if any(k != "flat" for k in kinds):
            for nprobe in NPROBE_SWEEP:
                probe = index if nprobe == params.nprobe else open_index(ws.store, ws.keys, nprobe=nprobe)
                lat = []
                for q in queries:
                    t0 = clock()
                    probe.search(q[None], SEARCH_K)
                    lat.append(clock() - t0)
                sweep[str(nprobe)] = {"index_search": percentiles(lat),
                                      **_quality(_search_rows(probe, queries, to_vec, ABOVE_K), truth_scores,
                                                 truth_ids)}
                del probe
        merge = {"merge_s": merge_s, "merge_vectors_per_s": n / merge_s if merge_s else None, **floors}
        for key in ("read_records", "faiss_build", "faiss_add", "aes_gcm"):
            merge[f"{key}_vectors_per_s"] = n / floors[f"{key}_s"] if floors[f"{key}_s"] else None
        entry: dict[str, Any] = {
            "vectors": n, "videos": videos, "record_files": syn.chunks, "data": syn.data,
            "write_records_s": syn.write_seconds,
            "merge_s": merge_s, "merge_vectors_per_s": merge["merge_vectors_per_s"], "merge": merge,
            "shards": len(shards), "shard_kinds": kinds, "shard_mib": sum(s.size for s in shards) / 2**20,
            "index_version": getattr(merged, "version", None),
            "store_mib": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20,
            "open_index_s": stats(load_s),
            "faiss_floor": percentiles(floor_lat),
            "faiss_same_kind": percentiles(kind_lat),
            "index_search": percentiles(raw_lat),
            "search_index_with_hits": percentiles(full_lat),
            **quality,
            "nprobe_sweep": sweep,
            "mean_hits": float(np.mean(hits)),
            "queries": q_count,
        }
        del index, same_kind, syn, vecs, to_vec
        if cli is not None and DEFAULT_PORTRAIT.is_file():
            walls, rss = [], []
            cmd = [str(cli), "search", str(DEFAULT_PORTRAIT), "--store", str(root), "--json",
                   "--device", a.device, "--weights-dir", str(a.weights_dir)]
            for r in range(a.runs):
                log(f"search: cold CLI over {n:,} vectors, run {r + 1}/{a.runs}")
                wall, peak, rc, text = _run_child(cmd, ctx.child_env())
                if rc == 0:
                    walls.append(wall)
                    rss.append(peak)
                else:
                    entry["cli_error"] = text
                    break
            entry["cli_cold_wall_s"] = stats(walls)
            entry["cli_peak_rss_mib"] = stats(rss)
        out["sizes"][str(n)] = entry
        shutil.rmtree(root, ignore_errors=True)
    if any(n >= 100_000 for n in a.search_sizes):
        # IVF on structureless vectors is the worst case; faces data beside it, same size and build
        log("search: IVF built in memory over 100,000 uniform and 100,000 face-like vectors")
        out["ivf_in_memory"] = [_ivf_in_memory(d, 100_000, params) for d in ("uniform", "faces")]
    return out


def _embedder_id(ctx: Context, file_sha256) -> str:
    """The id the CLI will check the index against: the configured embedder file's."""
    if ctx._models:
        return next(iter(ctx._models.values())).ids["embedder"]
    names = ctx.settings.embedder
    names = (names,) if isinstance(names, str) else names
    for name in names:
        path = Path(ctx.settings.resolved_weights_dir()) / name
        if path.is_file():
            return file_sha256(path)[:12]
    return ctx.models(True).ids["embedder"]
