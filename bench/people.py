"""People discovery bench: which clustering, how right, how fast (standalone script).

    .venv/bin/python -m bench.people photos            # labelled photo pairs (../shared/media/people)
    .venv/bin/python -m bench.people friends           # Friends clip, process --sample-fps 4, vs the portraits
    .venv/bin/python -m bench.people scale --faces 1000000 --threads 2

Methods compared on the same embeddings:
- ``avg-link@t``: average-linkage hierarchical clustering cut at cosine t (scipy; needs all n² similarities);
- ``components@t``: connected components of the k-NN graph at cosine ≥ t (single linkage on the graph);
- ``whispers@t``: Chinese whispers on the same graph (what `identity/clustering.py` ships).
Pair accuracy: over all pairs of labelled faces, "same cluster" agrees with "same person".
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
from itertools import combinations
from pathlib import Path

import numpy as np

from faceid_jobs.identity.clustering import ClusterParams, chinese_whispers, components, knn_edges, renumber

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55)


def pair_accuracy(pred: np.ndarray, truth: list[str]) -> float:
    pairs = list(combinations(range(len(truth)), 2))
    right = sum((pred[i] == pred[j]) == (truth[i] == truth[j]) for i, j in pairs)
    return right / max(1, len(pairs))


def methods(vectors: np.ndarray, t: float) -> dict[str, np.ndarray]:
    from scipy.cluster.hierarchy import fcluster, linkage

    params = ClusterParams(threshold=t)
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
    vectors, names = [], []
    for path, who in people_photos():
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
    env = {"FACEID_JOBS_KEY_FILE": str(key), "PATH": "/usr/bin:/bin"}
    subprocess.run([str(exe), "process", str(video), "--store", str(store), "--sample-fps", str(fps)],
                   check=True, env=env, capture_output=True)


def bench_friends(thresholds: tuple[float, ...], ks: tuple[int, ...] = (10,)) -> dict:
    """Process the clip once; per threshold, cluster every track again and check each person of ≥ 3 faces
    against the portraits (nearest portrait per face, `portrait_purity`)."""
    from faceid_jobs.config import Settings
    from faceid_jobs.identity.discover import configured_embedder, discover_with
    from faceid_jobs.models import load_models
    from faceid_jobs.storage import LocalStore
    from faceid_jobs.workspace import open_workspace

    tmp = Path(tempfile.mkdtemp(prefix="people-bench-"))
    _process(MEDIA / "friends" / "in_video.mp4", tmp / "store", tmp / "key.json")
    settings = Settings(weights_dir=str(MEDIA.parent / "weights"), key_file=str(tmp / "key.json"),
                        store=str(tmp / "store"), device="cpu")
    ws = open_workspace(settings, store=LocalStore(tmp / "store"))
    names, portraits = portrait_vectors(load_models(settings, liveness=False), MEDIA / "friends" / "faces")
    rows = []
    for k in ks:
        for t in thresholds:
            result = discover_with(ws, configured_embedder(settings), ClusterParams(k=k, threshold=t), rebuild=True)
            purity = portrait_purity(faces_by_person(ws), names, portraits)
            rows.append({"k": k, "threshold": t, "people": result.people, "people_3_faces": len(purity["people"]),
                         "split": purity["split"], "missing": purity["missing"],
                         "impure_faces": purity["impure_faces"], "persons": purity["people"]})
    return {"case": "friends", "sweep": rows}


def faces_by_person(ws) -> list[dict]:
    """Every stored face with its person: video URI, frame, embedding (the newest people version)."""
    from faceid_jobs.identity.discover import _COLUMNS
    from faceid_jobs.identity.people import load_state
    from faceid_jobs.index.merge import current_sources
    from faceid_jobs.records.parquet import parquet_to_table

    state = load_state(ws)
    person = {}
    for row in state.nodes.select(["fingerprint", "track_id", "face_id", "person"]).to_pylist():
        key = (row["fingerprint"], row["track_id"]) if row["track_id"] is not None else row["face_id"]
        person[key] = state.resolve(row["person"])
    out = []
    for key, uri in sorted(current_sources(ws.store, state.embedder_id, ws.keys).items()):
        for r in parquet_to_table(ws.store.get(key), key, _COLUMNS, cipher=ws.cipher).to_pylist():
            node = (r["video_fingerprint"], r["track_id"]) if r["track_id"] is not None else r["face_id"]
            out.append({"video": uri, "frame": r["frame_index"], "timestamp_s": r["timestamp_s"],
                        "embedding": np.asarray(r["embedding"], np.float32), "person": person[node]})
    return out


def portrait_vectors(models, folder: Path) -> tuple[list[str], np.ndarray]:
    """Names and embeddings of the portraits in `folder` (file stem = name)."""
    from faceid_jobs.images import read_photo
    from faceid_jobs.photo import face_of

    names, vecs = [], []
    for path in sorted(folder.glob("*.png")):
        names.append(path.stem)
        vecs.append(face_of(read_photo(path), path.name, models, liveness=False, quality=False)[1])
    return names, np.stack(vecs).astype(np.float32)


def portrait_purity(faces: list[dict], names: list[str], portraits: np.ndarray, min_faces: int = 3,
                    min_cos: float = 0.2) -> dict:
    """Each face goes to its nearest portrait; per person of ≥ `min_faces` faces, the characters it holds.

    A face below `min_cos` to every portrait is nobody's ("-": a head from behind or in hard profile at the
    frame edge, measured at ≤ 0.15 on the Friends clip); a person whose faces are mostly nobody's has no
    majority character.

    Returns ``{"people": {pid: {name: faces}}, "majority": {pid: name}, "split": [names held as the majority
    of more than one person], "impure_faces": faces not of their person's majority character}``.
    """
    from collections import Counter

    by: dict[str, Counter] = {}
    for f in faces:
        sims = portraits @ f["embedding"]
        who = names[int(np.argmax(sims))] if float(sims.max()) >= min_cos else "-"
        by.setdefault(f["person"], Counter())[who] += 1
    people = {p: dict(c) for p, c in by.items() if sum(c.values()) >= min_faces}
    majority = {p: max(c, key=lambda n: (c[n], n)) for p, c in people.items()}
    majority = {p: n for p, n in majority.items() if n != "-"}
    held = Counter(majority.values())
    return {"people": people, "majority": majority, "split": sorted(n for n, k in held.items() if k > 1),
            "missing": sorted(set(names) - set(held)),
            "impure_faces": sum(sum(v for n, v in people[p].items() if n not in (m, "-")) for p, m in majority.items())}


def slideshow(photos: list[tuple[Path, str]], target: Path, *, seed: int, seconds: float = 1.0, fps: float = 10.0,
              size: tuple[int, int] = (640, 480)) -> list[str]:
    """Write the photos in a seeded random order as an mp4v video, each letterboxed for `seconds`.

    Returns the name shown at each frame (frame i → names[i]).
    """
    import cv2

    from faceid_jobs.images import read_photo

    order = np.random.default_rng(seed).permutation(len(photos))
    w, h = size
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    shown: list[str] = []
    for i in order.tolist():
        path, who = photos[i]
        img = read_photo(path)
        scale = min(w / img.shape[1], h / img.shape[0])
        small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        frame = np.zeros((h, w, 3), np.uint8)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        frame[y:y + small.shape[0], x:x + small.shape[1]] = small
        for _ in range(round(seconds * fps)):
            writer.write(frame)
            shown.append(who)
    writer.release()
    return shown


def people_photos() -> list[tuple[Path, str]]:
    """The one-person photos of ../shared/media/people with their names (2–3 per person)."""
    test_names = {"obama1": "obama", "alex_lacamoire1": "alex_lacamoire", "johnsnow_test1": "kit_harington"}
    items = [(p, p.parent.name) for p in sorted((MEDIA / "people" / "train").glob("*/*.jp*g"))]
    return items + [(MEDIA / "people" / "test" / f"{k}.jpg", v) for k, v in test_names.items()]


def bench_scale(faces: int, add: int, threads: int, threshold: float) -> dict:
    """Synthetic face-like vectors in tracks of 1–8 faces: cluster from scratch, then add `add` faces."""
    import faiss

    from bench.synthetic import face_vectors
    from faceid_jobs.identity.clustering import track_nodes
    from faceid_jobs.identity.discover import _incremental
    from faceid_jobs.identity.people import PeopleState, person_id

    faiss.omp_set_num_threads(threads)
    fs = face_vectors(faces + add, 512, 11)
    rng = np.random.default_rng(5)
    # Tracks: runs of 1–8 faces of one identity (sort by identity, cut into runs).
    order = np.argsort(fs.identity, kind="stable")
    lengths = rng.integers(1, 9, len(order))
    starts = np.cumsum(lengths)
    track = np.zeros(len(order), np.int64)
    track[starts[starts < len(order)]] = 1
    track = np.cumsum(track)
    ident_sorted = fs.identity[order]
    track += np.cumsum(np.r_[0, ident_sorted[1:] != ident_sorted[:-1]])  # no track spans two identities
    keys = np.empty(len(order), np.int64)
    keys[order] = track
    old = ~(rng.random(int(keys.max()) + 1) < add / (faces + add))[keys]  # these tracks arrive later
    params = ClusterParams(threshold=threshold)
    t0 = time.perf_counter()
    uk, nodes = track_nodes(fs.vectors[old], keys[old])
    src, dst, sim = knn_edges(nodes, params)
    cls = renumber(chinese_whispers(len(nodes), src, dst, sim, seed=0))
    seconds = time.perf_counter() - t0
    truth = np.asarray([fs.identity[keys == k][0] for k in uk[:2000]])
    purity = float(np.mean([len(set(truth[cls[:2000] == c])) == 1 for c in np.unique(cls[:2000])]))
    state = PeopleState(version=1, next_id=int(cls.max()) + 2, vectors=nodes.astype(np.float16))
    import pyarrow as pa

    state.nodes = pa.table({"person": [person_id(int(c) + 1) for c in cls]})
    t1 = time.perf_counter()
    _, new_nodes = track_nodes(fs.vectors[~old], keys[~old])
    _incremental(state, new_nodes, params)
    inc = time.perf_counter() - t1
    return {"case": "scale", "faces": int(old.sum()), "nodes": len(nodes), "people_found": int(cls.max()) + 1,
            "identities": len(np.unique(fs.identity[old])), "seconds": round(seconds, 1),
            "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "pure_clusters_sampled": round(purity, 4), "added_faces": int((~old).sum()),
            "added_nodes": len(new_nodes), "incremental_seconds": round(inc, 2), "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["photos", "friends", "scale"])
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--add", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=ClusterParams().threshold)
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    ap.add_argument("--ks", type=int, nargs="+", default=[10])
    a = ap.parse_args()
    if a.case == "photos":
        out = bench_photos()
    elif a.case == "friends":
        out = bench_friends(tuple(a.thresholds), tuple(a.ks))
    else:
        out = bench_scale(a.faces, a.add, a.threads, a.threshold)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
