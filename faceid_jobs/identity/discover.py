"""Discover people: cluster the stored faces' tracks, incrementally or from scratch (I/O via a Store).

Reads record files only (their embeddings), never a video. Each run:

1. the record files of every catalogued video's current analysis
   (`index.merge.current_sources`) are compared with those the newest people
   version clustered: files no longer current lose their nodes, new ones are
   read and summarised per track (`clustering.track_nodes`). When the store
   lists exactly the files that version holds, nothing changed and the
   catalog is not read;
2. **incremental** (default): the new nodes are linked to each other and to
   up to `_EXEMPLARS` nodes of every known person (spread from the most to
   the least typical), whose people are pinned; above `exact_max` exemplars a
   new node only looks at those of the `nprobe` people whose mean vectors are
   nearest (`clustering.knn_edges_in_lists`). Chinese whispers then lets new
   nodes join a known person or form new ones. Known people never change;
3. **rebuild** (``rebuild=True``, or another embedder): every node is
   clustered again; each new cluster takes the id of the known person holding
   most of its nodes (the largest such cluster per person keeps it; the other
   parts of a person the user merged stay with it, others get new ids), so
   ids, names and ignores survive; a cluster joining two known people keeps
   the older (smaller) id.

Deterministic: same stored records, same settings → same people.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceid_jobs.config import Settings
from faceid_jobs.errors import StoreTransientError
from faceid_jobs.identity.clustering import (
    ClusterParams,
    chinese_whispers,
    knn_edges,
    knn_edges_in_lists,
    renumber,
    track_nodes,
)
from faceid_jobs.identity.people import (
    NODE_SCHEMA,
    PeopleState,
    PersonMeta,
    commit_state,
    load_state,
    person_id,
    persons_of,
    track_key,
)
from faceid_jobs.index.coverage import record_files
from faceid_jobs.index.merge import current_sources
from faceid_jobs.records.parquet import parquet_to_table
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.workspace import Workspace

__all__ = ["PeopleResult", "cluster_params", "configured_embedder", "discover_people", "discover_with",
           "nodes_of_table"]

_EXEMPLARS = 8
_COLUMNS = ["face_id", "video_fingerprint", "frame_index", "timestamp_s", "track_id", "bbox", "embedding", "quality",
            "liveness"]


@dataclass(frozen=True)
class PeopleResult:
    """What a discovery did."""

    version: int
    published: bool
    rebuild: bool
    people: int
    nodes: int
    faces: int
    new_files: int
    new_nodes: int
    dropped_nodes: int
    seconds: float
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def configured_embedder(settings: Settings, store: Any = None) -> str:
    """Model id of the configured embedder, from its file alone (no session is opened); without
    weights, the one embedder every catalogued video was analysed with (when `store`, a
    Workspace, is given)."""
    from faceid_jobs.errors import ModelError
    from faceid_jobs.models import resolve_model_path
    from faceid_jobs.models.runtime import ModelFile

    try:
        return ModelFile.from_path(resolve_model_path(settings, "embedder")).id
    except (ModelError, OSError):
        used = {e.embedder_id for e in list_entries(store.store, store.keys)} if store is not None else set()
        if len(used) == 1:
            return used.pop()
        raise


def cluster_params(settings: Settings) -> ClusterParams:
    return ClusterParams(k=settings.people_knn, threshold=settings.people_threshold)


def nodes_of_table(table: pa.Table, source: str, params: ClusterParams) -> tuple[pa.Table, np.ndarray]:
    """One record file's tracks: node rows (`NODE_SCHEMA` without person and version) and summaries."""
    n = table.num_rows
    if not n:
        return NODE_SCHEMA.empty_table().drop_columns(["person", "added_version"]), np.zeros((0, 0), np.float32)
    emb = table.column("embedding").combine_chunks()
    vectors = np.asarray(emb.values.to_numpy(zero_copy_only=False), np.float32).reshape(n, -1)
    tracks = table.column("track_id").combine_chunks()
    valid = np.asarray(tracks.is_valid().to_numpy(zero_copy_only=False), bool)
    tid = np.asarray(tracks.fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    keys = np.where(valid, tid, -(np.arange(n, dtype=np.int64) + 1))
    quality = np.asarray(table.column("quality").to_numpy(zero_copy_only=False), np.float64)
    liveness = np.asarray(table.column("liveness").to_numpy(zero_copy_only=False), np.float64)
    times = np.asarray(table.column("timestamp_s").to_numpy(zero_copy_only=False), np.float64)
    uniq, summaries = track_nodes(vectors, keys, quality, params.outlier_cos)
    inverse = np.searchsorted(uniq, keys)
    rank = np.nan_to_num(quality, nan=-1.0)
    best = [int(np.flatnonzero(inverse == g)[np.argmax(rank[inverse == g])]) for g in range(len(uniq))]
    counts = np.bincount(inverse, minlength=len(uniq))
    live = [float(np.nanmean(liveness[inverse == g])) if np.isfinite(liveness[inverse == g]).any() else None
            for g in range(len(uniq))]
    pick = pa.array(best, pa.int64())
    rows = table.take(pick)
    out = pa.table({
        "source": pa.array([source] * len(uniq), pa.string()),
        "fingerprint": rows.column("video_fingerprint").cast(pa.string()),
        "track_id": pa.array([int(k) if k >= 0 else None for k in uniq.tolist()], pa.int64()),
        "faces": pa.array(counts, pa.int32()),
        "start_s": pa.array([float(times[inverse == g].min()) for g in range(len(uniq))], pa.float64()),
        "end_s": pa.array([float(times[inverse == g].max()) for g in range(len(uniq))], pa.float64()),
        "face_id": rows.column("face_id").cast(pa.string()),
        "frame_index": rows.column("frame_index").cast(pa.int64()),
        "timestamp_s": rows.column("timestamp_s").cast(pa.float64()),
        "bbox": rows.column("bbox").cast(pa.list_(pa.float32(), 4)),
        "quality": rows.column("quality").cast(pa.float32()),
        "liveness": pa.array(live, pa.float32()),
    })
    return out, summaries


def _read_new(ws: Workspace, keys: list[str], params: ClusterParams, workers: int
              ) -> tuple[list[pa.Table], list[np.ndarray], int]:
    def one(key: str) -> tuple[pa.Table, np.ndarray, int]:
        table = parquet_to_table(ws.store.get(key), key, _COLUMNS, cipher=ws.cipher)
        nodes, vectors = nodes_of_table(table, key, params)
        return nodes, vectors, table.num_rows

    tables, vectors, faces = [], [], 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for t, v, n in pool.map(one, keys):
            if t.num_rows:
                tables.append(t)
                vectors.append(v)
            faces += n
    return tables, vectors, faces


def _exemplars(persons: np.ndarray, vectors: np.ndarray, chunk: int = 65_536
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Up to `_EXEMPLARS` nodes per person, spread from the most to the least typical (cosine to the mean).

    Returns (exemplar rows ascending, each one's person as an index into the ids, the people's unit mean
    vectors (people × dim, float32), the person ids ascending). One sort and a chunked pass over the nodes:
    no per-person loop (16.8k people at 1M faces).
    """
    from scipy.sparse import csr_matrix

    ids, inverse, counts = np.unique(persons, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")  # by person, rows ascending within one
    starts = np.cumsum(counts) - counts
    means = np.zeros((len(ids), vectors.shape[1]), np.float32)
    typical = np.zeros(len(order), np.float32)
    g = 0
    while g < len(ids):  # whole people per chunk, about `chunk` nodes (float32 copies stay small)
        end = max(g + 1, int(np.searchsorted(starts, starts[g] + chunk)))
        lo, hi = starts[g], starts[end] if end < len(ids) else len(order)
        v = vectors[order[lo:hi]].astype(np.float32)
        member = inverse[order[lo:hi]] - g
        # Sums per person as a sparse (people × nodes) product: far faster than np.add.reduceat on rows.
        sums = csr_matrix((np.ones(hi - lo, np.float32), (member, np.arange(hi - lo))), shape=(end - g, hi - lo)) @ v
        means[g:end] = sums / counts[g:end, None]
        typical[lo:hi] = np.einsum("ij,ij->i", v, means[g + member])
        g = end
    ranked = order[np.lexsort((-typical, inverse[order]))]  # by person, most typical first (ties: row order)
    # A person of s > E nodes: ranks round(j·(s−1)/(E−1)), j = 0..E−1 (as np.linspace); else all of them.
    big = counts > _EXEMPLARS
    j = np.arange(_EXEMPLARS)
    picks = (starts[big, None] + np.rint(j * (counts[big, None] - 1) / (_EXEMPLARS - 1)).astype(np.int64)).ravel()
    small = np.repeat(~big, counts)
    rows = np.sort(np.concatenate([ranked[picks], ranked[small]]))
    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return rows.astype(np.int64), inverse[rows], unit, ids.tolist()


def _top_k(src: np.ndarray, dst: np.ndarray, sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `k` heaviest edges of each source (ties: the lower destination)."""
    order = np.lexsort((dst, -sim, src))
    src, dst, sim = src[order], dst[order], sim[order]
    first = np.searchsorted(src, src)
    keep = np.arange(len(src)) - first < k
    return src[keep], dst[keep], sim[keep]


def _incremental(state: PeopleState, new_vectors: np.ndarray, params: ClusterParams,
                 carried: list[str | None] | None = None) -> list[str]:
    """People ids of the new nodes (known people or fresh ids, taken from state.next_id).

    The new nodes are linked to their `k` nearest among the known people's exemplars and the other new
    nodes. Above `exact_max` exemplars the known side is searched as an IVF whose lists are the people
    themselves (their exemplars, probed by their mean vectors; nothing to train): at 1M faces that is
    about an eighth of the dot products of an exact search. A new node with a `carried` person (its
    track's faces lost their node to `drop_sources`) is pinned to it.
    """
    n = len(new_vectors)
    if state.nodes.num_rows:
        persons = np.asarray(state.nodes.column("person").to_numpy(zero_copy_only=False), dtype=str)
        ex, group, centroids, ids = _exemplars(persons, state.vectors)
    else:
        ex, group, centroids, ids = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32), []
    known = state.vectors[ex].astype(np.float32)
    labels_known = np.asarray([int(p[1:]) for p in ids], np.int64)[group] if ids else np.zeros(0, np.int64)
    m = len(known)
    if m > params.exact_max:
        s1, d1, w1 = knn_edges_in_lists(known, group, centroids, new_vectors, params)
        s2, d2, w2 = knn_edges(new_vectors, params)  # the new nodes among themselves
        src, dst, sim = _top_k(np.r_[s1, s2], np.r_[d1, d2 + m], np.r_[w1, w2], params.k)
    else:
        base = np.concatenate([known, new_vectors]) if m else new_vectors
        src, dst, sim = knn_edges(base, params, queries=new_vectors)
    src = src + m
    keep = src != dst
    hint = [state.resolve(p) if p is not None and state.resolve(p) in state.people else None
            for p in (carried or [None] * n)]
    start = np.concatenate([labels_known, [int(p[1:]) if p else -(i + 1) for i, p in enumerate(hint)]]
                           ).astype(np.int64)
    pinned = np.r_[np.ones(m, bool), np.asarray([p is not None for p in hint], bool)]
    cls = chinese_whispers(m + n, src[keep], dst[keep], sim[keep], labels=start, pinned=pinned,
                           iterations=params.iterations, seed=params.seed)[m:]
    return _name_classes(state, cls)


def _name_classes(state: PeopleState, cls: np.ndarray) -> list[str]:
    """Class ≥ 0 → that person; negative classes → fresh ids in order of first node."""
    fresh: dict[int, str] = {}
    out = []
    for c in cls.tolist():
        if c >= 0:
            out.append(person_id(c))
            continue
        if c not in fresh:
            fresh[c] = person_id(state.next_id)
            state.people[fresh[c]] = PersonMeta(created_version=state.version + 1)
            state.next_id += 1
        out.append(fresh[c])
    return out


def _rebuild(state: PeopleState, old_person: list[str | None], vectors: np.ndarray, params: ClusterParams
             ) -> list[str]:
    """Cluster every node again; map clusters to known ids by overlap (see the module docstring)."""
    src, dst, sim = knn_edges(vectors, params)
    cls = renumber(chinese_whispers(len(vectors), src, dst, sim, iterations=params.iterations, seed=params.seed))
    votes: dict[int, Counter] = {}
    for c, p in zip(cls.tolist(), old_person, strict=True):
        if p is not None:
            votes.setdefault(c, Counter())[state.resolve(p)] += 1
    # Each known person goes to the cluster holding most of its nodes (ties: the lower cluster).
    owner: dict[str, tuple[int, int]] = {}
    for c, counter in votes.items():
        for p, count in counter.items():
            if p in state.people and (p not in owner or (count, -c) > (owner[p][1], -owner[p][0])):
                owner[p] = (c, count)
    label: dict[int, int] = {}
    for p, (c, _) in sorted(owner.items()):
        label.setdefault(c, int(p[1:]))  # sorted ids: a cluster owning two people keeps the older
    for c, counter in votes.items():
        if c not in label:
            top = min(counter.items(), key=lambda pc: (-pc[1], pc[0]))[0]
            if top in state.people and state.people[top].merged:
                label[c] = int(top[1:])
    final = np.asarray([label.get(c, -(c + 1)) for c in cls.tolist()], np.int64)
    return _name_classes(state, final)


def discover_people(ws: Workspace, settings: Settings, *, rebuild: bool = False, workers: int = 2,
                    attempts: int = 3) -> PeopleResult:
    """Cluster the stored faces into people and publish a new people version when anything changed.

    Args:
        ws: the store and keys.
        settings: `people_*` settings and the embedder (`embedder_id` of the configured weights).
        rebuild: cluster everything again instead of adding new tracks to known people.
        workers: record files read in parallel.
        attempts: tries when another writer publishes a version meanwhile.

    Raises:
        StoreTransientError: kept losing to concurrent writers.
    """
    return discover_with(ws, configured_embedder(settings, ws), cluster_params(settings), rebuild=rebuild,
                         workers=workers, attempts=attempts)


def discover_with(ws: Workspace, embedder: str, params: ClusterParams, *, rebuild: bool = False, workers: int = 2,
                  attempts: int = 3) -> PeopleResult:
    """`discover_people` with the embedder id and parameters given (tests and benches)."""
    started = time.perf_counter()
    for _ in range(max(1, attempts)):
        state = load_state(ws)
        full = rebuild or (state.version > 0 and state.embedder_id != embedder)
        listed = record_files(ws.store)
        if not full and state.version and listed == set(state.sources):
            # Every record file in the store is one this version holds (`forget` drops the files it
            # rewrites from it; a new or re-analysed video brings new files): nothing to add or drop,
            # and the catalog (a read per video) is not needed to tell.
            return _result(state, False, False, 0, 0, 0, started, params)
        sources = current_sources(ws.store, embedder, ws.keys, listed=listed)
        if state.embedder_id != embedder:
            state.nodes, state.vectors, state.sources = NODE_SCHEMA.empty_table(), np.zeros((0, 0), np.float16), []
        current = np.asarray(pc.is_in(state.nodes.column("source"), value_set=pa.array(sorted(sources), pa.string()))
                             .to_numpy(zero_copy_only=False), bool)
        dropped = int((~current).sum())
        if dropped:  # else no copy of the vectors
            state.nodes = state.nodes.filter(pa.array(current))
            state.vectors = state.vectors[current]
        old_sources = set(state.sources) & sources.keys()
        todo = sorted(sources.keys() - (set() if full else old_sources))
        if full:
            kept = {s: p for s, p in zip(_node_keys(state.nodes), state.nodes.column("person").to_pylist(),
                                         strict=True)}
            added = {k: v for k, v in zip(_node_keys(state.nodes), state.nodes.column("added_version").to_pylist(),
                                          strict=True)}
            state.nodes, state.vectors = NODE_SCHEMA.empty_table(), np.zeros((0, 0), np.float16)
        tables, vecs, _ = _read_new(ws, todo, params, workers)
        new_nodes = sum(t.num_rows for t in tables)
        # Nodes carried over by a forget that found no faces to come back, or people left with none: publish.
        settled = not state.carried and set(state.people) <= persons_of(state.nodes)
        nothing = not new_nodes and not dropped and settled and (not state.version or set(todo) <= old_sources)
        # A first run over footage without faces still publishes (no people, the files read):
        # otherwise every later run would read every record file of the archive again.
        if (nothing and not full and state.version) or (not state.version and not new_nodes and not todo):
            return _result(state, False, False, 0, 0, 0, started, params)
        new_vectors = np.concatenate(vecs).astype(np.float32) if vecs else np.zeros((0, state.dim or 1), np.float32)
        new_table = pa.concat_tables(tables) if tables else None
        if full:
            keys = _node_keys(new_table) if new_table is not None else []
            carried = _carried(state, new_table) if new_table is not None else []
            persons = _rebuild(state, [kept.get(k) or c for k, c in zip(keys, carried, strict=True)], new_vectors,
                               params) if keys else []
            versions = [added.get(k, state.version + 1) for k in keys]
        else:
            persons = _incremental(state, new_vectors, params, _carried(state, new_table)) if new_nodes else []
            versions = [state.version + 1] * new_nodes
        if new_table is not None:
            new_table = new_table.append_column("person", pa.array(persons, pa.string())).append_column(
                "added_version", pa.array(versions, pa.int64())).select(NODE_SCHEMA.names).cast(NODE_SCHEMA)
            state.nodes = pa.concat_tables([state.nodes.cast(NODE_SCHEMA), new_table])
            old = state.vectors if len(state.vectors) else np.zeros((0, new_vectors.shape[1]), np.float16)
            state.vectors = np.concatenate([old, new_vectors.astype(np.float16)])
            state.dim = int(new_vectors.shape[1])
        state.embedder_id = embedder
        state.carried = {}  # the rewritten files were read again above
        state.sources = sorted(sources)
        state.params = params.to_json()
        live = persons_of(state.nodes)
        # A person left without faces goes, named or not: a name kept on no faces would still be refused to
        # the next person given it (forget clears names of identities that leave the gallery, `clear_names`).
        state.people = {p: m for p, m in state.people.items() if p in live}
        new = commit_state(ws, state, "rebuild" if full else "discover")
        if new is not None:
            return _result(new, True, full, len(todo), new_nodes, dropped, started, params)
    raise StoreTransientError(f"{ws.store.uri}: could not publish a people version after {attempts} attempts "
                     "(concurrent discoveries); run it again")


def _carried(state: PeopleState, table: pa.Table) -> list[str | None]:
    """Per node of `table`: the person its track belonged to before `drop_sources`, else None."""
    if not state.carried:
        return [None] * table.num_rows
    return [None if t is None else state.carried.get(track_key(f, t))
            for f, t in zip(table.column("fingerprint").to_pylist(), table.column("track_id").to_pylist(), strict=True)]


def _node_keys(nodes: pa.Table) -> list[tuple[str, Any]]:
    return list(zip(nodes.column("source").to_pylist(), nodes.column("track_id").to_pylist(),
                    nodes.column("face_id").to_pylist() if "face_id" in nodes.column_names else [None] * nodes.num_rows,
                    strict=True))


def _result(state: PeopleState, published: bool, full: bool, files: int, new_nodes: int, dropped: int,
            started: float, params: ClusterParams) -> PeopleResult:
    total = int(np.asarray(state.nodes.column("faces").to_numpy(zero_copy_only=False)).sum()) \
        if state.nodes.num_rows else 0
    return PeopleResult(state.version, published, full, len(persons_of(state.nodes)),
                        state.nodes.num_rows, total, files, new_nodes, dropped,
                        round(time.perf_counter() - started, 3), params.to_json())
