"""Find where the person in a photo appears (pure given a loaded model set and index).

The query face is the largest face in the photo (or the one asked for by
index, faces numbered largest first), found, aligned and embedded by the one
photo path (`faceid_jobs.photo.face_of`), exactly as faces in footage are,
then matched by cosine similarity. When liveness models are loaded the query
face's P(live) is measured too, and `faceid_jobs.photo.check_live` refuses a
spoofed photo.

An index built with ``index_by = "track"`` (rows carry ``start_s``/``end_s``)
answers with appearances: hits of one track, and tracks of one video at
most `appearance_gap_s` apart, become one hit spanning ``start_s``–``end_s``
whose frame, time and box are those of its most similar face
(`faceid_jobs.search.appearances.merge_appearances`). A face index answers with
one hit per stored face.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faceid_jobs.errors import IndexMissingError
from faceid_jobs.index import IndexInfo, ShardedIndex
from faceid_jobs.models import ModelSet
from faceid_jobs.photo import PhotoFace, face_of
from faceid_jobs.search.appearances import merge_appearances

__all__ = [
    "Hit",
    "Query",
    "SearchResult",
    "make_query",
    "search_image",
    "search_index",
]


@dataclass(frozen=True)
class Hit:
    """One stored face similar to the query, or (track index) one appearance.

    For an appearance, `start_s`/`end_s` span it and `track_id` is the track
    of its most similar face, whose `timestamp_s`, `frame`, `bbox` and
    `face_id` these are; `liveness` is that track's mean P(live).
    """

    video: str
    timestamp_s: float
    frame: int
    bbox: tuple[float, float, float, float]
    similarity: float
    face_id: str
    liveness: float | None
    quality: float | None
    track_id: int | None = None
    start_s: float | None = None
    end_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Appearance: video, start_s, end_s, timestamp_s, frame, similarity,
        liveness, quality, track_id, bbox, face_id; face hit: the same without
        start_s/end_s."""
        data = asdict(self) | {"bbox": list(self.bbox)}
        if self.start_s is None:
            del data["start_s"], data["end_s"]
        return data


@dataclass(frozen=True)
class SearchResult:
    query: PhotoFace
    hits: tuple[Hit, ...]
    index: IndexInfo
    # "track": hits are appearances; "face": one hit per stored face.
    mode: str = "face"

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query.to_json(),
            "hits": [h.to_json() for h in self.hits],
            "index": {"build_id": self.index.build_id, "kind": self.index.kind,
                      "vectors": self.index.vectors, "dim": self.index.dim,
                      "embedder_id": self.index.embedder_id, "videos": self.index.videos,
                      "created_at": self.index.created_at, "index_by": self.mode},
        }


@dataclass(frozen=True)
class Query:
    """A query face and its embedding (D,) float32."""

    face: PhotoFace
    embedding: np.ndarray
    embedder_id: str


def make_query(image: np.ndarray, photo: str, models: ModelSet, face_index: int | None = None, *,
               liveness: bool = True) -> Query:
    """Detect, choose, align and embed the query face of a BGR image (`faceid_jobs.photo.face_of`).

    With `liveness` and liveness models loaded (`models.liveness`), the
    face's P(live) is measured as well (`PhotoFace.liveness`); otherwise it is None.

    Raises:
        NoFaceError: the image holds no face.
        ConfigError: `face_index` is out of range.
    """
    face, embedding = face_of(image, photo, models, face_index=face_index, liveness=liveness)
    return Query(face, embedding, models.ids["embedder"])


def search_index(
    query: Query,
    index: ShardedIndex,
    *,
    top_k: int = 20,
    threshold: float = 0.4,
    min_liveness: float = 0.0,
    appearance_gap_s: float = 1.0,
) -> SearchResult:
    """Hits for a query at or above `threshold`, best first, at most `top_k`.

    `index` is any loaded index with ``search(queries, k)``, ``meta``,
    ``info`` and ``len()`` . Rows whose liveness is below
    `min_liveness` are left out (a missing liveness too, when it is above 0).
    A track index (see the module docstring) gives up to `top_k` appearances.

    Raises:
        IndexMissingError: the index was built with a different embedder.
    """
    if index.info.vectors and index.info.embedder_id != query.embedder_id:
        raise IndexMissingError(
            f"{query.face.photo}: the index was built with embedder {index.info.embedder_id} but "
            f"the configured embedder is {query.embedder_id}; re-run `faceid-jobs process`"
        )
    total = len(index)
    if not total:
        return SearchResult(query=query.face, hits=(), index=index.info)
    tracks = _is_track_index(index.meta)
    k = min(total, top_k * 4 if tracks or min_liveness > 0 else top_k)
    while True:
        scores, rows = index.search(query.embedding[None, :], k)
        scores, rows = scores[0], rows[0]
        keep = (rows >= 0) & (scores >= threshold)
        meta = index.meta.take(rows[keep]).to_pydict()
        sims = scores[keep].tolist()
        live = [_passes(v, min_liveness) for v in meta["liveness"]]
        meta = {name: [v for v, ok in zip(col, live, strict=True) if ok] for name, col in meta.items()}
        sims = [s for s, ok in zip(sims, live, strict=True) if ok]
        hits = _appearances(meta, sims, appearance_gap_s) if tracks else [_hit(meta, j, sims[j])
                                                                           for j in range(len(sims))]
        exhausted = k >= total or len(scores) == 0 or float(scores[-1]) < threshold
        if len(hits) >= top_k or exhausted:
            break
        k = min(total, k * 4)
    return SearchResult(query=query.face, hits=tuple(hits[:top_k]), index=index.info,
                        mode="track" if tracks else "face")


def _is_track_index(meta: Any) -> bool:
    """Rows stand for tracks when they carry a time span (`index_by = "track"`)."""
    if meta is None or "start_s" not in meta.column_names or meta.num_rows == 0:
        return False
    return meta.column("start_s").null_count < meta.num_rows


def _passes(value: float | None, minimum: float) -> bool:
    if minimum <= 0:
        return True
    return value is not None and float(value) >= minimum


def _hit(meta: dict[str, list[Any]], j: int, similarity: float, **span: Any) -> Hit:
    return Hit(
        video=meta["video_uri"][j],
        timestamp_s=round(float(meta["timestamp_s"][j]), 3),
        frame=int(meta["frame_index"][j]),
        bbox=tuple(round(float(v), 1) for v in meta["bbox"][j]),
        similarity=round(float(similarity), 4),
        face_id=meta["face_id"][j],
        liveness=_opt(meta["liveness"][j]),
        quality=_opt(meta["quality"][j]),
        **span,
    )


def _appearances(meta: dict[str, list[Any]], sims: list[float], gap_s: float) -> list[Hit]:
    spans = merge_appearances(meta["video_fingerprint"], meta["track_id"], meta["start_s"], meta["end_s"],
                              sims, gap_s=gap_s)
    return [
        _hit(meta, s.row, sims[s.row], track_id=meta["track_id"][s.row],
             start_s=round(s.start_s, 3), end_s=round(s.end_s, 3))
        for s in spans
    ]


def search_image(
    image: np.ndarray,
    photo: str,
    models: ModelSet,
    index: ShardedIndex,
    *,
    top_k: int = 20,
    threshold: float = 0.4,
    face_index: int | None = None,
    min_liveness: float = 0.0,
    appearance_gap_s: float = 1.0,
) -> SearchResult:
    """`make_query` then `search_index`."""
    query = make_query(image, photo, models, face_index)
    return search_index(query, index, top_k=top_k, threshold=threshold, min_liveness=min_liveness,
                        appearance_gap_s=appearance_gap_s)


def _opt(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
