"""Faces into people: track summaries, a k-nearest-neighbour graph and Chinese whispers (pure).

**Nodes.** A track is one node: the faces of a track are one person
already (`pipeline/tracking.py` gates them by box overlap *and* cosine).
Its vector is the quality-weighted mean of its embeddings, recomputed once
without the faces far from that first mean (a stray face the tracker let
through), then L2-normalised. A face without a track id is a node of its own.

**Graph.** Each node is linked to its `k` nearest nodes at cosine ≥
`threshold` (FAISS: exact inner product up to `exact_max` nodes, and above
whenever that costs less than training and probing an IVF index, see `_plan`),
edges weighted by their cosine and made symmetric.

**Clustering.** Chinese whispers (Biemann 2006): every node starts as its own
class and repeatedly takes the class with the largest summed edge weight
among its neighbours. Nodes are visited in a seeded random order, in
`_BLOCKS` blocks per round updated together (vectorised; a block sees the
classes the earlier blocks chose), until no class changes. Ties go to the
smaller class id, so the result depends only on the input and the seed.
*Pinned* nodes (an incremental run's known people) keep their class: new
nodes join them or form classes of their own.

Why this and not one cosine cut of average linkage, or the connected
components of the same graph: measured in ``bench/people.py`` (its output
holds the numbers). Components chain two people through one bad edge;
average linkage needs all n² similarities (no 1M faces in 4 GB); Chinese
whispers follows the dense part of the graph, costs O(n·k) per round, and
can be run incrementally with pinned classes.

Why 0.4 (``bench/people.py friends``, ``process --sample-fps 4`` of the
Friends clip, faces labelled by the six portraits): tracks of different
characters meet at cosine ≤ 0.33, and Chinese whispers gives one pure person
per character at every cut from 0.3 to 0.45 (0.5 splits Chandler, 0.55 Monica
too); the photo slideshow stays right up to 0.55. 0.4 sits mid-band. No second
merge pass: nothing left to merge in that band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClusterParams", "chinese_whispers", "cluster", "components", "knn_edges", "knn_edges_in_lists", "renumber",
           "track_nodes"]

_BLOCKS = 4
_KMEANS_ITER = 10
_SAMPLE_PER_LIST = 64


@dataclass(frozen=True)
class ClusterParams:
    """Clustering parameters (the `people_*` settings)."""

    k: int = 10
    threshold: float = 0.4
    iterations: int = 30
    seed: int = 0
    exact_max: int = 20_000
    nprobe: int = 32
    outlier_cos: float = 0.3

    def to_json(self) -> dict[str, float | int]:
        return {"k": self.k, "threshold": self.threshold, "iterations": self.iterations, "seed": self.seed,
                "exact_max": self.exact_max, "nprobe": self.nprobe, "outlier_cos": self.outlier_cos}


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norm, 1e-12)).astype(np.float32)


def track_nodes(vectors: np.ndarray, keys: np.ndarray, quality: np.ndarray | None = None,
                outlier_cos: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Per-track summary vectors.

    Args:
        vectors: (n, D) L2-normalised face embeddings.
        keys: (n,) int64 node key per face (the track; a unique key for a lone face).
        quality: (n,) face quality, NaN when unknown (weight 0.5).
        outlier_cos: faces below this cosine to the first mean are left out of the second.

    Returns:
        (unique keys ascending (m,), summaries (m, D) float32), and so node i is keys[i].

    Example:
        >>> v = np.eye(3, dtype=np.float32)
        >>> k, s = track_nodes(v, np.array([5, 5, 9]))
        >>> k.tolist(), np.round(s[1], 2).tolist()
        ([5, 9], [0.0, 0.0, 1.0])
    """
    vectors = np.asarray(vectors, np.float32)
    q = np.full(len(vectors), 0.5, np.float32) if quality is None else np.asarray(quality, np.float32)
    w = np.clip(np.nan_to_num(q, nan=0.5), 0.05, 1.0)
    uniq, inverse = np.unique(np.asarray(keys, np.int64), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.flatnonzero(np.r_[True, inverse[order][1:] != inverse[order][:-1]]) if len(order) else order
    first = _unit(np.add.reduceat(vectors[order] * w[order, None], starts)) if len(order) else vectors[:0]
    near = np.einsum("ij,ij->i", vectors, first[inverse]) >= outlier_cos
    # A track whose faces are all "outliers" keeps them all.
    near |= np.bincount(inverse, weights=near, minlength=len(uniq))[inverse] == 0
    weights = np.where(near, w, 0.0).astype(np.float32)
    second = np.add.reduceat(vectors[order] * weights[order, None], starts) if len(order) else vectors[:0]
    return uniq, _unit(second)


def _plan(n: int, q: int, params: ClusterParams) -> int:
    """IVF list count for `q` queries over `n` vectors, or 0 for exact search when that costs fewer dot products.

    An index is built once per discovery and thrown away, so its k-means training counts as much as its
    searches: about ``iter·64·L²`` (training on 64 samples per list) + ``(n + q)·L`` (assigning) +
    ``q·nprobe·n/L`` (probing), against ``q·n`` for exact search. L is 4·√n: fewer, larger lists
    cost less to train but lose more neighbours (measured on face-like vectors, `bench/people.py scale`:
    186 lists over 23.5k tracks lost 0.18 % of the edges and split one identity, 613 lost 0.005 %).
    (An incremental run searches the known people's exemplars with the people as the lists instead,
    `knn_edges_in_lists`: no training at all.) `nprobe` 32, not 16:
    probing is a small part of the cost and at 1M faces (235k tracks) 16 split 34 of 16,814 identities, 32
    split 8 (none mixed either way).

    Example:
        >>> p = ClusterParams()
        >>> _plan(135_000, 2_345, p), _plan(235_000, 235_000, p)
        (0, 1939)
    """
    if n <= params.exact_max:
        return 0
    lists = int(min(16384, max(64, 4 * np.sqrt(n))))
    cost = _KMEANS_ITER * _SAMPLE_PER_LIST * float(lists) ** 2 + (n + q) * lists + q * params.nprobe * n / lists
    return lists if cost < float(q) * n else 0


def knn_edges(vectors: np.ndarray, params: ClusterParams, queries: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (src, dst, cosine) from each query row to its `k` nearest `vectors` at ≥ threshold.

    Without `queries`, the vectors query themselves (self-edges dropped). Query
    i is row i of `queries`; dst indexes `vectors`.
    """
    import faiss

    base = np.ascontiguousarray(vectors, np.float32)
    own = queries is None
    q = base if own else np.ascontiguousarray(queries, np.float32)
    n, dim = base.shape
    if not n or not len(q):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    k = min(n, params.k + (1 if own else 0))
    nlist = _plan(n, len(q), params)
    if not nlist:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(params.seed)
        sample = base[np.sort(rng.choice(n, min(n, _SAMPLE_PER_LIST * nlist), replace=False))]
        index.cp.seed = params.seed
        index.cp.niter = _KMEANS_ITER
        index.train(sample)
        index.nprobe = params.nprobe
    index.add(base)
    sims, idx = index.search(q, k)
    return _edges(sims, idx, params.threshold, own)


def knn_edges_in_lists(vectors: np.ndarray, lists: np.ndarray, centroids: np.ndarray, queries: np.ndarray,
                       params: ClusterParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`knn_edges` of `queries` over `vectors` already grouped: an IVF whose lists are given, not trained.

    Vector i is in list ``lists[i]``, list j is probed by ``centroids[j]`` (unit); each query searches
    the `nprobe` lists whose centroids are nearest. For the known people of an incremental discovery
    (lists = people, centroids = their mean vectors) the nearest nodes are in the nearest people.
    """
    import faiss
    from faiss.contrib.ivf_tools import add_preassigned

    base = np.ascontiguousarray(vectors, np.float32)
    q = np.ascontiguousarray(queries, np.float32)
    n, dim = base.shape
    if not n or not len(q):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids, np.float32))
    index = faiss.IndexIVFFlat(quantizer, dim, len(centroids), faiss.METRIC_INNER_PRODUCT)
    add_preassigned(index, base, np.ascontiguousarray(lists, np.int64))
    index.nprobe = min(params.nprobe, len(centroids))
    sims, idx = index.search(q, min(n, params.k))
    return _edges(sims, idx, params.threshold, own=False)


def _edges(sims: np.ndarray, idx: np.ndarray, threshold: float, own: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS results (queries × k) as edges at ≥ threshold; `own`: the queries are the vectors (no self-edges)."""
    src = np.repeat(np.arange(len(idx), dtype=np.int64), idx.shape[1])
    dst, sim = idx.ravel().astype(np.int64), sims.ravel()
    keep = (dst >= 0) & (sim >= threshold)
    if own:
        keep &= dst != src
    return src[keep], dst[keep], sim[keep].astype(np.float32)


def _csr(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric adjacency as (row per edge, neighbour, weight), rows ascending; duplicates keep the max."""
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src])
    ww = np.concatenate([w, w])
    if not len(a):
        return a, b, ww
    order = np.lexsort((-ww, b, a))
    a, b, ww = a[order], b[order], ww[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[first], b[first], ww[first]


def chinese_whispers(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, *,
                     labels: np.ndarray | None = None, pinned: np.ndarray | None = None,
                     iterations: int = 30, seed: int = 0) -> np.ndarray:
    """Class per node (int64) by Chinese whispers over the undirected weighted graph.

    Args:
        n: nodes.
        src, dst, weight: edges (either direction; made symmetric).
        labels: starting classes (default: node i in class i); pinned nodes must carry theirs.
        pinned: (n,) bool, nodes that keep their starting class.
        iterations: most rounds.
        seed: visiting order.

    Example:
        >>> renumber(chinese_whispers(5, np.array([0, 1, 3]), np.array([1, 2, 4]), np.ones(3))).tolist()
        [0, 0, 0, 1, 1]
    """
    cls = np.arange(n, dtype=np.int64) if labels is None else np.asarray(labels, np.int64).copy()
    fixed = np.zeros(n, bool) if pinned is None else np.asarray(pinned, bool)
    row, col, w = _csr(n, np.asarray(src, np.int64), np.asarray(dst, np.int64), np.asarray(weight, np.float64))
    rng = np.random.default_rng(seed)
    movable = np.flatnonzero(~fixed)
    for _ in range(max(1, iterations)):
        block = np.empty(n, np.int64)
        block[movable] = rng.permutation(len(movable)) % _BLOCKS
        block[fixed] = -1
        changed = 0
        for b in range(_BLOCKS):
            sel = block[row] == b
            if not sel.any():
                continue
            r, c = row[sel], cls[col[sel]]
            # Sum the weight per (node, neighbour class), then the best class per node.
            key_order = np.lexsort((c, r))
            r, c, ws = r[key_order], c[key_order], w[sel][key_order]
            start = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])])
            sums = np.add.reduceat(ws, start)
            rr, cc = r[start], c[start]
            pick = np.lexsort((cc, -sums, rr))
            rr, cc = rr[pick], cc[pick]
            best = np.r_[True, rr[1:] != rr[:-1]]
            nodes, new = rr[best], cc[best]
            changed += int(np.count_nonzero(cls[nodes] != new))
            cls[nodes] = new
        if not changed:
            break
    return cls


def components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected components of the graph (the single-linkage baseline the bench compares)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def cluster(vectors: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Classes of the node vectors, numbered 0.. in order of each class's first node (deterministic)."""
    src, dst, sim = knn_edges(vectors, params)
    cls = chinese_whispers(len(vectors), src, dst, sim, iterations=params.iterations, seed=params.seed)
    return renumber(cls)


def renumber(cls: np.ndarray) -> np.ndarray:
    """Classes numbered 0, 1, … in order of their first node.

    Example:
        >>> renumber(np.array([7, 3, 7, 9])).tolist()
        [0, 1, 0, 2]
    """
    if not len(cls):
        return np.asarray(cls, np.int64)
    _, first, inverse = np.unique(cls, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]
