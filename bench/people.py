"""People discovery bench: which clustering, how right, how fast (standalone script).

    .venv/bin/python -m bench.people photos            # labelled photo pairs (../shared/media/people)
    .venv/bin/python -m bench.people friends --root /tmp/fr  # Friends clip, process --sample-fps 4 (kept in --root)
    .venv/bin/python -m bench.people scale --faces 1000000 --add 10000 --threads 2

Methods compared on the same embeddings:
- ``avg-link@t``: average-linkage hierarchical clustering cut at cosine t (scipy; needs all n² similarities);
- ``components@t``: connected components of the k-NN graph at cosine ≥ t (single linkage on the graph);
- ``whispers@t``: Chinese whispers on the same graph (what `identity/clustering.py` ships).
Pair accuracy: over all pairs of labelled faces, "same cluster" agrees with "same person".
``friends`` labels each stored face by the nearest of the six portraits when that is clear and the shot table
allows it (`tests/people_truth.py`), sweeps method × threshold × k over the track summaries, judges the
people of ≥ 3 faces (one pure person per character?) and adds ``avg-link-faces@t``: plain average linkage of
the faces themselves, no tracks (the baseline to beat).
Prints one JSON object per case.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faceid_jobs.identity.clustering import ClusterParams, chinese_whispers, components, knn_edges, renumber

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55)


def pair_accuracy(pred: np.ndarray, truth: list[str]) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.people_truth import pair_accuracy as accuracy

    return accuracy(pred, truth)


def methods(vectors: np.ndarray, t: float, k: int = 10) -> dict[str, np.ndarray]:
    from scipy.cluster.hierarchy import fcluster, linkage

    params = ClusterParams(threshold=t, k=k)
    src, dst, sim = knn_edges(vectors, params)
    out = {"whispers": renumber(chinese_whispers(len(vectors), src, dst, sim)),
           "components": components(len(vectors), src, dst)}
    if len(vectors) <= 20_000:
        z = linkage(vectors.astype(np.float64), method="average", metric="cosine")
        out["avg-link"] = fcluster(z, 1 - t, criterion="distance")
    return out


def photo_faces() -> tuple[np.ndarray, list[str]]:
    from faceid_jobs.config import Settings
    from faceid_jobs.images import read_photo
    from faceid_jobs.models import load_models
    from faceid_jobs.photo import face_of

    models = load_models(Settings(weights_dir=str(MEDIA.parent / "weights"), device="cpu"), liveness=False)
    test_names = {"obama1": "obama", "alex_lacamoire1": "alex_lacamoire", "johnsnow_test1": "kit_harington"}
    items = [(p, p.parent.name) for p in sorted((MEDIA / "people" / "train").glob("*/*.jpg"))]
    items += [(MEDIA / "people" / "test" / f"{k}.jpg", v) for k, v in test_names.items()]
    vectors, names = [], []
    for path, who in items:
        _, emb = face_of(read_photo(path), path.name, models, liveness=False, quality=False)
        vectors.append(emb)
        names.append(who)
    return np.stack(vectors).astype(np.float32), names


def bench_photos() -> dict:
    vectors, names = photo_faces()
    rows = {f"{m}@{t}": round(pair_accuracy(pred, names), 4)
            for t in THRESHOLDS for m, pred in methods(vectors, t).items()}
    return {"case": "photos", "faces": len(names), "pairs": len(names) * (len(names) - 1) // 2, "pair_accuracy": rows}


def _process(video: Path, store: Path, key: Path, fps: float = 4.0) -> None:
    exe = Path(sys.executable).parent / "faceid-jobs"
    env = {"FACEID_JOBS_KEY_FILE": str(key), "PATH": "/usr/bin:/bin",
           "FACEID_JOBS_WEIGHTS_DIR": str(MEDIA.parent / "weights"), "FACEID_JOBS_DEVICE": "cpu"}
    subprocess.run([str(exe), "process", str(video), "--store", str(store), "--sample-fps", str(fps)],
                   check=True, env=env, capture_output=True)


def friends_faces(root: Path | None = None) -> dict:
    """The Friends clip processed at 4 frames/s (into `root`, or reused from it): every stored face's embedding,
    frame and track key, and its label: the nearest portrait when that is clear (see `portrait_labels`)."""
    import pyarrow as pa

    from faceid_jobs.config import Settings
    from faceid_jobs.identity.discover import _COLUMNS, configured_embedder
    from faceid_jobs.images import read_photo
    from faceid_jobs.index.merge import current_sources
    from faceid_jobs.models import load_models
    from faceid_jobs.photo import face_of
    from faceid_jobs.records.parquet import parquet_to_table
    from faceid_jobs.storage import LocalStore
    from faceid_jobs.workspace import open_workspace

    root = root or Path(tempfile.mkdtemp(prefix="people-bench-"))
    if not (root / "store").is_dir():
        _process(MEDIA / "friends" / "in_video.mp4", root / "store", root / "key.json")
    settings = Settings(weights_dir=str(MEDIA.parent / "weights"), key_file=str(root / "key.json"),
                        store=str(root / "store"), device="cpu")
    ws = open_workspace(settings, store=LocalStore(root / "store"))
    keys = sorted(current_sources(ws.store, configured_embedder(settings)))
    table = pa.concat_tables([parquet_to_table(ws.store.get(k), k, _COLUMNS, cipher=ws.cipher) for k in keys])
    n = table.num_rows
    vectors = np.asarray(table.column("embedding").combine_chunks().values.to_numpy(zero_copy_only=False),
                         np.float32).reshape(n, -1)
    tracks = table.column("track_id").to_pylist()
    models = load_models(Settings(weights_dir=str(MEDIA.parent / "weights"), device="cpu"), liveness=False)
    names = sorted(p.stem for p in (MEDIA / "friends" / "faces").glob("*.png"))
    portraits = np.stack([face_of(read_photo(MEDIA / "friends" / "faces" / f"{m}.png"), m, models, liveness=False,
                                  quality=False)[1] for m in names])
    return {"vectors": vectors, "frames": np.asarray(table.column("frame_index").to_numpy(), np.int64),
            "keys": np.asarray([t if t is not None else -(i + 1) for i, t in enumerate(tracks)], np.int64),
            "quality": np.asarray(table.column("quality").to_numpy(zero_copy_only=False), np.float64),
            "names": names, "portraits": portraits, "root": root}


def bench_friends(root: Path | None, thresholds: tuple[float, ...] = THRESHOLDS) -> dict:
    """Sweep: people of >= 3 faces per method and threshold, judged by the portraits; pair accuracy over the
    faces with a clear portrait label that the shot table allows (the labelled set)."""
    from faceid_jobs.identity.clustering import track_nodes

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.friends import EDGE, SHOTS, shot_of
    from tests.people_truth import judge, portrait_labels

    f = friends_faces(root)
    labels = portrait_labels(f["vectors"], f["portraits"], f["names"])
    # The labelled set: a clear portrait label that the shot table allows (facing the camera or at its edge).
    ok = [m is not None and (m in SHOTS[shot_of(int(fr))][2] or (m, shot_of(int(fr))) in EDGE)
          for m, fr in zip(labels, f["frames"].tolist(), strict=True)]
    lab_idx = np.flatnonzero(ok)
    truth = [labels[i] for i in lab_idx]
    uk, nodes = track_nodes(f["vectors"], f["keys"], f["quality"])
    inverse = np.searchsorted(uk, f["keys"])
    sweep, pairs = [], {}
    for t in thresholds:
        for k in (5, 10, 20):
            for m, cls in methods(nodes, t, k).items():
                if m == "avg-link" and k != 10:
                    continue
                face_cls = np.asarray(cls)[inverse]
                row = {"method": m, "threshold": t, "k": k, **judge(face_cls, labels, f["frames"])}
                sweep.append(row)
                if k == 10:
                    pairs[f"{m}@{t}"] = round(pair_accuracy(face_cls[lab_idx], truth), 4)
        # The plain baseline: average linkage of the faces themselves (no tracks) at one cut.
        from scipy.cluster.hierarchy import fcluster, linkage

        z = linkage(f["vectors"].astype(np.float64), method="average", metric="cosine")
        pairs[f"avg-link-faces@{t}"] = round(pair_accuracy(fcluster(z, 1 - t, "distance")[lab_idx], truth), 4)
    return {"case": "friends", "faces": len(labels), "nodes": len(uk), "labelled_faces": len(lab_idx),
            "labelled_pairs": len(lab_idx) * (len(lab_idx) - 1) // 2,
            "label_counts": {m: truth.count(m) for m in sorted(set(truth))}, "pair_accuracy": pairs,
            "sweep": sweep}


def _synthetic_tracks(faces: int, add: int, seed: int = 11, chunk: int = 65536):
    """Face-like synthetic tracks (runs of 1–8 faces of one identity, `bench/synthetic.py` noise), yielded as
    (face vectors, track keys, identity per track, is-new per track) a chunk at a time: like discovery, which
    summarises one record file at a time, no more than a chunk of faces is ever held."""
    from bench.synthetic import _faces_of, _noise_sigma

    rng = np.random.default_rng(seed)
    n = faces + add
    counts = rng.integers(20, 101, n // 20 + 1)
    counts = counts[: int(np.searchsorted(np.cumsum(counts), n)) + 1]
    counts[-1] -= int(counts.sum()) - n
    centres = rng.standard_normal((len(counts), 512), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    identity = np.repeat(np.arange(len(counts), dtype=np.int64), counts)  # faces sorted by identity
    brk = np.zeros(n, bool)
    cuts = np.cumsum(rng.integers(1, 9, n))
    brk[cuts[cuts < n]] = True  # runs of 1-8
    brk[np.r_[0, np.cumsum(counts)[:-1]]] = True  # and never across two identities
    track = np.cumsum(brk) - 1
    new = rng.random(int(track[-1]) + 1) < add / n
    sigma = _noise_sigma(0.75, 512)
    starts = np.flatnonzero(brk)
    for s in range(0, len(starts), max(1, chunk // 5)):
        lo = starts[s]
        hi = starts[s + chunk // 5] if s + chunk // 5 < len(starts) else n
        yield _faces_of(centres, identity[lo:hi], sigma, rng), track[lo:hi], identity[lo:hi], new


def bench_scale(faces: int, add: int, threads: int, threshold: float, nprobe: int = ClusterParams().nprobe) -> dict:
    """Synthetic faces in tracks of 1–8: summarise and cluster `faces` from scratch, then add `add` more
    incrementally (known people pinned). Times exclude generating the synthetic faces."""
    import faiss
    import pyarrow as pa

    from faceid_jobs.identity.clustering import track_nodes
    from faceid_jobs.identity.discover import _incremental
    from faceid_jobs.identity.people import PeopleState, person_id

    faiss.omp_set_num_threads(threads)
    params = ClusterParams(threshold=threshold, nprobe=nprobe)
    old_nodes, old_truth, new_nodes, new_truth = [], [], [], []
    summarise = generate = 0.0
    n_old = n_new = 0
    t = time.perf_counter()
    for vectors, keys, ident, is_new in _synthetic_tracks(faces, add):
        t1 = time.perf_counter()
        generate += t1 - t
        for flag, nodes, truth in ((False, old_nodes, old_truth), (True, new_nodes, new_truth)):
            sel = is_new[keys] == flag
            if sel.any():
                uk, v = track_nodes(vectors[sel], keys[sel])
                nodes.append(v)
                truth.append(ident[sel][np.searchsorted(keys[sel], uk)])
        n_new += int(is_new[keys].sum())
        n_old += int((~is_new[keys]).sum())
        t = time.perf_counter()
        summarise += t - t1
    nodes, truth = np.concatenate(old_nodes), np.concatenate(old_truth)
    del old_nodes
    t0 = time.perf_counter()
    src, dst, sim = knn_edges(nodes, params)
    t_knn = time.perf_counter() - t0
    cls = renumber(chinese_whispers(len(nodes), src, dst, sim, seed=0))
    seconds = time.perf_counter() - t0
    pairs = {(int(c), int(i)) for c, i in zip(cls.tolist(), truth.tolist(), strict=True)}
    classes_per_identity = np.bincount(np.asarray([i for _, i in pairs]))
    identities_per_class = np.bincount(np.asarray([c for c, _ in pairs]))
    state = PeopleState(version=1, next_id=int(cls.max()) + 2, vectors=nodes.astype(np.float16))
    state.nodes = pa.table({"person": [person_id(int(c) + 1) for c in cls]})
    added = np.concatenate(new_nodes)
    t1 = time.perf_counter()
    got = _incremental(state, added, params)
    inc = time.perf_counter() - t1
    known = {person_id(int(c) + 1): int(i) for c, i in pairs}
    new_truth_all = np.concatenate(new_truth)
    joined_right = np.mean([known.get(p) == int(i) for p, i in zip(got, new_truth_all.tolist(), strict=True)])
    return {"case": "scale", "faces": n_old, "nodes": len(nodes), "identities": len(np.unique(truth)),
            "people_found": int(cls.max()) + 1, "ivf": len(nodes) > params.exact_max,
            "identities_split": int((classes_per_identity > 1).sum()),
            "people_mixed": int((identities_per_class > 1).sum()),
            "generate_seconds": round(generate, 1), "summarise_seconds": round(summarise, 1),
            "knn_seconds": round(t_knn, 1), "cluster_seconds": round(seconds, 1),
            "scratch_seconds": round(summarise + seconds, 1),
            "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "added_faces": n_new, "added_nodes": len(added), "incremental_seconds": round(inc, 2),
            "added_joined_their_person": round(float(joined_right), 4), "threads": threads,
            "threshold": threshold, "nprobe": nprobe}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["photos", "friends", "scale"])
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--add", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=ClusterParams().threshold)
    ap.add_argument("--nprobe", type=int, default=ClusterParams().nprobe, help="scale: IVF lists probed")
    ap.add_argument("--root", type=Path, help="friends: folder holding store/ and key.json (processed once, reused)")
    a = ap.parse_args()
    if a.case == "photos":
        out = bench_photos()
    elif a.case == "friends":
        out = bench_friends(a.root)
    else:
        out = bench_scale(a.faces, a.add, a.threads, a.threshold, a.nprobe)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
