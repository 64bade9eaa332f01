"""Find where the person in a photo appears (pure given a loaded model set and index).

The query face is the largest face in the photo (or the one asked for by
index, faces numbered largest first); it is aligned and embedded exactly as
faces in footage are, then matched by cosine similarity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faceid_jobs.errors import ConfigError, IndexMissingError, NoFaceError
from faceid_jobs.index import FaceIndex, IndexInfo
from faceid_jobs.models import ModelSet
from faceid_jobs.models.align import align_faces
from faceid_jobs.types import Faces

__all__ = [
    "Hit",
    "Query",
    "QueryFace",
    "SearchResult",
    "make_query",
    "pick_query_face",
    "search_image",
    "search_index",
]


@dataclass(frozen=True)
class QueryFace:
    """The face a search was made with."""

    photo: str
    bbox: tuple[float, float, float, float]
    det_score: float
    face_index: int
    faces_in_photo: int


@dataclass(frozen=True)
class Hit:
    """One stored face similar to the query."""

    video: str
    timestamp_s: float
    frame: int
    bbox: tuple[float, float, float, float]
    similarity: float
    face_id: str
    liveness: float | None
    quality: float | None


@dataclass(frozen=True)
class SearchResult:
    query: QueryFace
    hits: tuple[Hit, ...]
    index: IndexInfo

    def to_json(self) -> dict[str, Any]:
        return {
            "query": {"photo": self.query.photo, "bbox": list(self.query.bbox),
                      "det_score": self.query.det_score, "face_index": self.query.face_index,
                      "faces_in_photo": self.query.faces_in_photo},
            "hits": [asdict(h) | {"bbox": list(h.bbox)} for h in self.hits],
            "index": {"build_id": self.index.build_id, "kind": self.index.kind,
                      "vectors": self.index.vectors, "dim": self.index.dim,
                      "embedder_id": self.index.embedder_id, "videos": self.index.videos,
                      "created_at": self.index.created_at},
        }


def pick_query_face(faces: Faces, face_index: int | None, photo: str) -> tuple[Faces, int]:
    """Choose the query face: largest first, or the `face_index`-th largest."""
    if len(faces) == 0:
        raise NoFaceError(f"{photo}: no face found in the photo")
    by_size = np.argsort(-faces.area, kind="stable")
    i = 0 if face_index is None else face_index
    if not 0 <= i < len(faces):
        raise ConfigError(f"{photo}: --face-index {i} out of range (the photo has {len(faces)} faces)")
    return faces[[int(by_size[i])]], i


@dataclass(frozen=True)
class Query:
    """A query face and its embedding (D,) float32."""

    face: QueryFace
    embedding: np.ndarray
    embedder_id: str


def make_query(image: np.ndarray, photo: str, models: ModelSet, face_index: int | None = None) -> Query:
    """Detect, choose, align and embed the query face of a BGR image.

    Raises:
        NoFaceError: the image holds no face.
        ConfigError: `face_index` is out of range.
    """
    faces = models.detector.detect(image)
    face, chosen = pick_query_face(faces, face_index, photo)
    embedding = models.embedder.embed(align_faces(image, face.kps))[0]
    qf = QueryFace(
        photo=photo,
        bbox=tuple(round(float(v), 1) for v in face.xyxy[0]),
        det_score=round(float(face.score[0]), 4),
        face_index=chosen,
        faces_in_photo=len(faces),
    )
    return Query(qf, embedding, models.ids["embedder"])


def search_index(query: Query, index: FaceIndex, *, top_k: int = 20, threshold: float = 0.4) -> SearchResult:
    """Hits for a query: the top-k stored faces at or above `threshold`, best first.

    Raises:
        IndexMissingError: the index was built with a different embedder.
    """
    if index.info.vectors and index.info.embedder_id != query.embedder_id:
        raise IndexMissingError(
            f"{query.face.photo}: the index was built with embedder {index.info.embedder_id} but "
            f"the configured embedder is {query.embedder_id}; re-run `faceid-jobs process`"
        )
    hits: list[Hit] = []
    if len(index):
        scores, rows = index.search(query.embedding[None, :], top_k)
        keep = (rows[0] >= 0) & (scores[0] >= threshold)
        picked = rows[0][keep]
        meta = index.meta.take(picked).to_pydict()
        for j, sim in enumerate(scores[0][keep].tolist()):
            hits.append(Hit(
                video=meta["video_uri"][j],
                timestamp_s=round(float(meta["timestamp_s"][j]), 3),
                frame=int(meta["frame_index"][j]),
                bbox=tuple(round(float(v), 1) for v in meta["bbox"][j]),
                similarity=round(float(sim), 4),
                face_id=meta["face_id"][j],
                liveness=_opt(meta["liveness"][j]),
                quality=_opt(meta["quality"][j]),
            ))
    return SearchResult(query=query.face, hits=tuple(hits), index=index.info)


def search_image(
    image: np.ndarray,
    photo: str,
    models: ModelSet,
    index: FaceIndex,
    *,
    top_k: int = 20,
    threshold: float = 0.4,
    face_index: int | None = None,
) -> SearchResult:
    """`make_query` then `search_index`."""
    query = make_query(image, photo, models, face_index)
    return search_index(query, index, top_k=top_k, threshold=threshold)


def _opt(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
