"""People discovery bench: which clustering, how right, how fast (standalone script).

    .venv/bin/python -m bench.people photos            # labelled photo pairs (../shared/media/people)
    .venv/bin/python -m bench.people friends --ks 5 10 20  # Friends clip, process --sample-fps 4, vs the portraits
    .venv/bin/python -m bench.people scale --faces 1000000 --add 10000 --threads 2

Methods compared on the same embeddings:
- ``avg-link@t``: average-linkage hierarchical clustering cut at cosine t (scipy; needs all n² similarities);
- ``components@t``: connected components of the k-NN graph at cosine ≥ t (single linkage on the graph);
- ``whispers@t``: Chinese whispers on the same graph (what `identity/clustering.py` ships).
Pair accuracy: over all pairs of labelled faces, "same cluster" agrees with "same person".
``friends`` labels each stored face by the nearest of the six portraits when that is clear and the shot table
allows it (`portrait_labels`), runs discovery per threshold × k (people of ≥ 3 faces judged by
`portrait_purity`, pair accuracy of the people ids), then the methods above on the same track summaries and
``avg-link-faces@t``: plain average linkage of the faces themselves, no tracks (the baseline to beat).
``scale`` generates synthetic face-like tracks a chunk at a time (as discovery reads record files), clusters
them from scratch (in memory), stores that result as a people version in a temporary store (1,000 catalogued
videos of 5 record files; the old record files are empty stand-ins, an incremental run only lists them), then
writes ``--add`` faces as record files of new videos and times the incremental discovery end to end
(`discover_with`: load the version, read the new files, cluster, publish the next version); it counts
identities split and people mixed over every node, and the added tracks that joined their identity's person.
Prints one JSON object per case.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_CLIP, PEOPLE_TEST_TRUTH, SHARED, cpu_mark, default_weights_dir, others_share
from faceid_jobs.identity.clustering import ClusterParams, chinese_whispers, components, knn_edges, renumber

MEDIA = SHARED / "media"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55)


def pair_accuracy(pred, truth) -> float:
    """Over all pairs of labelled faces: the share where "same cluster" agrees with "same person"."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if len(pred) < 2:
        return 1.0
    upper = np.triu(np.ones((len(pred), len(pred)), bool), 1)
    return float(((pred[:, None] == pred[None, :]) == (truth[:, None] == truth[None, :]))[upper].mean())


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

    models = load_models(Settings(weights_dir=str(default_weights_dir()), device="cpu"), liveness=False)
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


def _process(video: Path, store: Path, key: Path, weights: Path, fps: float = 4.0) -> None:
    exe = Path(sys.executable).parent / "faceid-jobs"
    env = {"FACEID_JOBS_KEY_FILE": str(key), "PATH": "/usr/bin:/bin",
           "FACEID_JOBS_WEIGHTS_DIR": str(weights), "FACEID_JOBS_DEVICE": "cpu"}
    subprocess.run([str(exe), "process", str(video), "--store", str(store), "--sample-fps", str(fps)],
                   check=True, env=env, capture_output=True)


def bench_friends(thresholds: tuple[float, ...], ks: tuple[int, ...] = (10,), weights: Path | None = None) -> dict:
    """Process the clip once; per k and threshold, cluster every track again and check each person of ≥ 3 faces
    against the portraits (nearest portrait per face, `portrait_purity`) and the pairs of labelled faces
    (`portrait_labels`, where the shot table agrees). Then, on the same faces: the other methods over the
    same track summaries, and plain average linkage of the faces themselves (the baseline to beat)."""
    tmp = Path(tempfile.mkdtemp(prefix="people-bench-"))
    try:
        return _friends_in(tmp, thresholds, ks, weights or default_weights_dir())
    finally:  # the store holds biometric records (encrypted, with the key beside them)
        shutil.rmtree(tmp, ignore_errors=True)


def _friends_in(tmp: Path, thresholds: tuple[float, ...], ks: tuple[int, ...], weights: Path) -> dict:
    from scipy.cluster.hierarchy import fcluster, linkage

    from faceid_jobs.config import Settings
    from faceid_jobs.identity.clustering import track_nodes
    from faceid_jobs.identity.discover import configured_embedder, discover_with
    from faceid_jobs.models import load_models
    from faceid_jobs.storage import LocalStore
    from faceid_jobs.workspace import open_workspace

    _process(DEFAULT_CLIP, tmp / "store", tmp / "key.json", weights)
    settings = Settings(weights_dir=str(weights), key_file=str(tmp / "key.json"),
                        store=str(tmp / "store"), device="cpu")
    ws = open_workspace(settings, store=LocalStore(tmp / "store"))
    names, portraits = portrait_vectors(load_models(settings, liveness=False), MEDIA / "friends" / "faces")
    rows, labelled, truth, faces = [], None, [], []
    for k in ks:
        for t in thresholds:
            result = discover_with(ws, configured_embedder(settings), ClusterParams(k=k, threshold=t), rebuild=True)
            faces = faces_by_person(ws)
            if labelled is None:
                labelled, truth = labelled_faces(faces, names, portraits)
            purity = portrait_purity(faces, names, portraits)
            person = np.asarray([f["person"] for f in faces])
            rows.append({"k": k, "threshold": t, "people": result.people, "people_3_faces": len(purity["people"]),
                         "split": purity["split"], "missing": purity["missing"],
                         "impure_faces": purity["impure_faces"],
                         "pair_accuracy": round(pair_accuracy(person[labelled], truth), 4),
                         "persons": purity["people"]})
    vectors = np.stack([f["embedding"] for f in faces])
    _, keys = np.unique(np.asarray([repr(f["node"]) for f in faces]), return_inverse=True)
    uk, nodes = track_nodes(vectors, keys, np.asarray([f["quality"] for f in faces], np.float64))
    inverse = np.searchsorted(uk, keys)
    z = linkage(vectors.astype(np.float64), method="average", metric="cosine")
    pairs = {}
    for t in thresholds:
        for m, cls in methods(nodes, t).items():
            pairs[f"{m}@{t}"] = round(pair_accuracy(np.asarray(cls)[inverse][labelled], truth), 4)
        pairs[f"avg-link-faces@{t}"] = round(pair_accuracy(fcluster(z, 1 - t, "distance")[labelled], truth), 4)
    return {"case": "friends", "faces": len(faces), "nodes": len(uk), "labelled_faces": len(labelled),
            "labelled_pairs": len(labelled) * (len(labelled) - 1) // 2,
            "label_counts": {m: truth.count(m) for m in sorted(set(truth))}, "sweep": rows,
            "pair_accuracy_k10": pairs}


def labelled_faces(faces: list[dict], names: list[str], portraits: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The faces with a clear portrait label that the shot table allows (in the shot, or at its edge)."""
    from tests.friends import EDGE, SHOTS, shot_of

    labels = portrait_labels(np.stack([f["embedding"] for f in faces]), portraits, names)
    idx = [i for i, (m, f) in enumerate(zip(labels, faces, strict=True)) if m is not None
           and (m in SHOTS[shot_of(int(f["frame"]))][2] or (m, shot_of(int(f["frame"]))) in EDGE)]
    return np.asarray(idx, np.int64), [labels[i] for i in idx]


def faces_by_person(ws) -> list[dict]:
    """Every stored face with its person: video URI, frame, embedding, quality, node (its track, or the face
    alone when it has none) and person (the newest people version), in a fixed order."""
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
                        "embedding": np.asarray(r["embedding"], np.float32), "quality": r["quality"],
                        "node": node, "person": person[node]})
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


def portrait_labels(vectors: np.ndarray, portraits: np.ndarray, names: list[str], floor: float = 0.25,
                    margin: float = 0.1) -> list[str | None]:
    """Each face's nearest portrait when its cosine is ≥ `floor` and beats the second by `margin`, else None.

    Stricter than `portrait_purity`'s nearest portrait: a label here is truth for pair accuracy, and faces seen
    from behind or in hard profile resemble no portrait (nearest-portrait is noise for them).
    """
    sims = vectors @ portraits.T
    top = np.sort(sims, axis=1)
    ok = (top[:, -1] >= floor) & (top[:, -1] - top[:, -2] >= margin)
    return [names[b] if o else None for b, o in zip(sims.argmax(1).tolist(), ok.tolist(), strict=True)]


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
    items = [(p, p.parent.name) for p in sorted((MEDIA / "people" / "train").glob("*/*.jp*g"))]
    return items + [(MEDIA / "people" / "test" / k, next(iter(v))) for k, v in PEOPLE_TEST_TRUTH.items() if len(v) == 1]


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


_EMBEDDER = "bench-synthetic"
_ANALYSIS = "bench"


def bench_scale(faces: int, add: int, threads: int, threshold: float, nprobe: int = ClusterParams().nprobe,
                faces_per_video: int = 1000, files_per_video: int = 5) -> dict:
    """Synthetic faces in tracks of 1–8: summarise and cluster `faces` from scratch (in memory), store the
    result as a people version (one video per `faces_per_video` faces), then add `add` more faces as record
    files of new videos (one per 100 old ones) and time the
    incremental discovery a user runs (`discover_with`: load, read the new files, cluster, publish). Times
    exclude generating the synthetic faces and writing the store."""
    import faiss
    import pyarrow.compute as pc

    from faceid_jobs.identity.clustering import track_nodes
    from faceid_jobs.identity.discover import discover_with
    from faceid_jobs.identity.people import load_state, person_id

    faiss.omp_set_num_threads(threads)
    params = ClusterParams(threshold=threshold, nprobe=nprobe)
    videos = max(1, faces // faces_per_video)
    old_nodes, old_truth, old_counts, new_faces, new_keys, new_ident = [], [], [], [], [], []
    summarise = generate = 0.0
    t = time.perf_counter()
    for vectors, keys, ident, is_new in _synthetic_tracks(faces, add):
        t1 = time.perf_counter()
        generate += t1 - t
        fresh = is_new[keys]
        if (~fresh).any():
            uk, v = track_nodes(vectors[~fresh], keys[~fresh])
            old_nodes.append(v)
            old_truth.append(ident[~fresh][np.searchsorted(keys[~fresh], uk)])
            old_counts.append(np.unique(keys[~fresh], return_counts=True)[1])
        new_faces.append(vectors[fresh])
        new_keys.append(keys[fresh])
        new_ident.append(ident[fresh])
        t = time.perf_counter()
        summarise += t - t1
    nodes, truth, counts = np.concatenate(old_nodes), np.concatenate(old_truth), np.concatenate(old_counts)
    del old_nodes
    t0 = time.perf_counter()
    src, dst, sim = knn_edges(nodes, params)
    t_knn = time.perf_counter() - t0
    cls = renumber(chinese_whispers(len(nodes), src, dst, sim, seed=0))
    seconds = time.perf_counter() - t0
    del src, dst, sim
    scratch_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    pairs = {(int(c), int(i)) for c, i in zip(cls.tolist(), truth.tolist(), strict=True)}
    classes_per_identity = np.bincount(np.asarray([i for _, i in pairs]))
    identities_per_class = np.bincount(np.asarray([c for c, _ in pairs]))
    n_nodes = len(nodes)
    vectors16 = nodes.astype(np.float16)
    del nodes
    added = np.concatenate(new_faces)
    added_keys, added_ident = np.concatenate(new_keys), np.concatenate(new_ident)
    with tempfile.TemporaryDirectory(prefix="people-scale-") as tmp:
        t1 = time.perf_counter()
        ws = _stored_people(Path(tmp), vectors16, cls, counts, params, videos, files_per_video)
        del vectors16
        new_files = max(1, videos // 100)
        _store_added(ws, added, added_keys, new_files)
        store_s = time.perf_counter() - t1
        busy0, cpu0, t1 = cpu_mark(), time.process_time(), time.perf_counter()
        result = discover_with(ws, _EMBEDDER, params, workers=threads)
        inc, inc_cpu = time.perf_counter() - t1, time.process_time() - cpu0
        others = others_share(busy0, inc_cpu, inc)
        state = load_state(ws)
    fresh_nodes = state.nodes.filter(pc.equal(state.nodes.column("added_version"), result.version))
    identity_of = dict(zip(added_keys.tolist(), added_ident.tolist(), strict=True))
    known = {person_id(c + 1): i for c, i in pairs}
    joined = [known.get(p) == identity_of[k] for p, k in zip(fresh_nodes.column("person").to_pylist(),
                                                              fresh_nodes.column("track_id").to_pylist(), strict=True)]
    return {"case": "scale", "faces": int(counts.sum()), "nodes": n_nodes, "identities": len(np.unique(truth)),
            "people_found": int(cls.max()) + 1, "ivf": n_nodes > params.exact_max,
            "identities_split": int((classes_per_identity > 1).sum()),
            "people_mixed": int((identities_per_class > 1).sum()),
            "generate_seconds": round(generate, 1), "summarise_seconds": round(summarise, 1),
            "knn_seconds": round(t_knn, 1), "cluster_seconds": round(seconds, 1),
            "scratch_seconds": round(summarise + seconds, 1), "scratch_rss_gb": round(scratch_rss, 2),
            "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "store_seconds": round(store_s, 1), "stored_videos": videos,
            "stored_record_files": videos * files_per_video,
            "added_faces": len(added), "added_files": new_files, "added_nodes": result.new_nodes,
            "incremental_seconds": round(inc, 2), "incremental_cpu_seconds": round(inc_cpu, 2),
            "incremental_others_cpu_share": None if others is None else round(others, 3),
            "published_version": result.version,
            "added_joined_their_person": round(float(np.mean(joined)), 4) if joined else 0.0,
            "threads": threads, "threshold": threshold, "nprobe": nprobe}


def _stored_people(root: Path, vectors: np.ndarray, cls: np.ndarray, counts: np.ndarray, params: ClusterParams,
                   videos: int, files_per_video: int):
    """A store holding the from-scratch result as people version 1, as discovery would have published it:
    `videos` catalogued videos of `files_per_video` record files each, the tracks spread over them in order.
    The record files are empty stand-ins: an incremental run lists them but reads only new ones."""
    import pyarrow as pa

    from faceid_jobs.config import Settings
    from faceid_jobs.identity.people import NODE_SCHEMA, PeopleState, PersonMeta, commit_state, person_id
    from faceid_jobs.storage import LocalStore, VideoEntry, save_entry
    from faceid_jobs.storage.layout import record_key
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(Settings(key_file=str(root / "key.json")), create_key=True, store=LocalStore(root / "store"))
    n, files = len(cls), videos * files_per_video
    fps = [f"{v:016x}" for v in range(videos)]
    keys = [record_key(_ANALYSIS, fps[f // files_per_video], f % files_per_video) for f in range(files)]
    for key in keys:
        ws.store.put(key, b"")
    for v, fp in enumerate(fps):
        save_entry(ws.store, VideoEntry(fp, f"/archive/{v:05d}.mp4", 25.0, 25 * 600, 1280, 720, _ANALYSIS, _EMBEDDER,
                                        files_per_video), ws.keys)
    file_of = np.arange(n, dtype=np.int64) * files // n
    start = (np.arange(n) - np.searchsorted(file_of, file_of)) * 0.5 + file_of % files_per_video * 120.0
    nodes = pa.table({
        "source": pa.array(np.asarray(keys, object)[file_of], pa.string()),
        "fingerprint": pa.array(np.asarray(fps, object)[file_of // files_per_video], pa.string()),
        "track_id": pa.array(np.arange(n), pa.int64()),
        "person": pa.array([person_id(int(c) + 1) for c in cls.tolist()], pa.string()),
        "faces": pa.array(counts, pa.int32()), "start_s": start, "end_s": start + counts * 0.25,
        "face_id": pa.array([f"{i:032x}" for i in range(n)], pa.string()),
        "frame_index": pa.array((start * 25).astype(np.int64)), "timestamp_s": start,
        "bbox": pa.FixedSizeListArray.from_arrays(pa.array(np.tile([10.0, 20.0, 110.0, 140.0], n), pa.float32()), 4),
        "quality": pa.array(np.full(n, 0.8, np.float32)), "liveness": pa.array(np.full(n, 0.9, np.float32)),
        "added_version": pa.array(np.ones(n, np.int64)),
    }).cast(NODE_SCHEMA)
    people = {person_id(c + 1): PersonMeta(created_version=1) for c in range(int(cls.max()) + 1)}
    commit_state(ws, PeopleState(embedder_id=_EMBEDDER, dim=vectors.shape[1], next_id=int(cls.max()) + 2,
                                 people=people, sources=sorted(keys), params=params.to_json(), nodes=nodes,
                                 vectors=vectors), "discover")
    return ws


def _store_added(ws, faces: np.ndarray, keys: np.ndarray, videos: int) -> None:
    """The added faces as record files of `videos` new videos (whole tracks each, one file per video)."""
    from tests.synthetic_store import add_video

    tracks = np.unique(keys)
    for v, part in enumerate(np.array_split(tracks, videos)):
        sel = np.isin(keys, part)
        add_video(ws, f"added{v:04d}", [list(zip(faces[sel], keys[sel].tolist(), strict=True))],
                  analysis=_ANALYSIS, embedder=_EMBEDDER, uri=f"/archive/added/{v:04d}.mp4")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["photos", "friends", "scale"])
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--add", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=ClusterParams().threshold)
    ap.add_argument("--nprobe", type=int, default=ClusterParams().nprobe, help="scale: IVF lists probed")
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    ap.add_argument("--ks", type=int, nargs="+", default=[10])
    ap.add_argument("--weights-dir", type=Path, default=None,
                    help="friends: the model weights (default: weights/files, else ../shared/weights)")
    a = ap.parse_args()
    if a.case == "photos":
        out = bench_photos()
    elif a.case == "friends":
        out = bench_friends(tuple(a.thresholds), tuple(a.ks), a.weights_dir.resolve() if a.weights_dir else None)
    else:
        out = bench_scale(a.faces, a.add, a.threads, a.threshold, a.nprobe)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
