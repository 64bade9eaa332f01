"""Who is this face? Gallery matching and 1:1 verification (pure).

**Matching.** A `GalleryMatrix` holds every enrolled embedding with the
index of its identity. A face's score for an identity is the best cosine
similarity to any of that identity's embeddings; the face is labelled with
the identity that scores highest, when that score is at least the threshold
(`identity_threshold`), else it stays unlabelled (None).

**Tracks.** `track_identities` gives every face of a track the track's
identity: the identity its faces were labelled with most, weighted by
similarity (the sum of the similarities of the faces labelled with it), so a
track whose frontal faces are labelled Ross carries Ross on its profile faces
too. Faces without a track id are tracks of their own.

**Verification.** `verify_face` matches the face of a photo
(`faceid_jobs.photo.face_of`) against one identity's embeddings.

Enrollment photos (which photos, their gates) are `faceid_jobs.identity.enrollment`.

Measured on the Friends clip (every 6th frame, 225 faces, w600k_mbf, the six
portraits as gallery): at 0.4, 179 faces are labelled and none with a person
who is not in that shot; the highest similarity of a face to a portrait of
someone else is 0.14.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceid_jobs.errors import ConfigError
from faceid_jobs.photo import PhotoFace

__all__ = [
    "GalleryMatrix",
    "VerifyResult",
    "track_identities",
    "verify_face",
]


@dataclass(frozen=True)
class GalleryMatrix:
    """Enrolled embeddings, stacked: `embeddings` (m, D) float32, `owner` (m,) index into `names`.

    Example:
        >>> import numpy as np
        >>> g = GalleryMatrix(("a", "b"), np.eye(2, dtype=np.float32), np.array([0, 1]))
        >>> g.label(np.array([[0.9, 0.1], [0.2, 0.3]], np.float32), 0.5)
        (['a', None], [0.9, None])
    """

    names: tuple[str, ...]
    embeddings: np.ndarray
    owner: np.ndarray

    @classmethod
    def from_identities(cls, identities: Sequence[tuple[str, np.ndarray]], dim: int = 0) -> GalleryMatrix:
        """From (name, (k, D) embeddings) pairs; an empty list gives an empty matrix of `dim`."""
        names = tuple(name for name, _ in identities)
        if not identities:
            return cls((), np.zeros((0, dim), np.float32), np.zeros(0, np.int64))
        embeddings = np.concatenate([np.asarray(e, np.float32).reshape(len(e), -1) for _, e in identities])
        owner = np.concatenate([np.full(len(e), i, np.int64) for i, (_, e) in enumerate(identities)])
        return cls(names, np.ascontiguousarray(embeddings), owner)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def scores(self, faces: np.ndarray) -> np.ndarray:
        """(n, D) L2-normalised embeddings → (n, identities) best cosine per identity."""
        faces = np.asarray(faces, np.float32).reshape(len(faces), -1)
        out = np.full((len(faces), len(self.names)), -np.inf, np.float32)
        if not len(faces) or not len(self.names):
            return out
        if faces.shape[1] != self.dim:
            raise ConfigError(f"embeddings of dimension {faces.shape[1]} cannot be matched against a "
                              f"gallery of dimension {self.dim} (another embedder)")
        order = np.argsort(self.owner, kind="stable")
        owner = self.owner[order]
        sims = faces @ self.embeddings[order].T
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[:, owner[starts]] = np.maximum.reduceat(sims, starts, axis=1)
        return out

    def best(self, faces: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per face: (identity index or -1 below `threshold` (n,) int64, best similarity (n,) float32)."""
        scores = self.scores(faces)
        if not scores.shape[1]:
            return np.full(len(scores), -1, np.int64), np.full(len(scores), np.nan, np.float32)
        idx = np.argmax(scores, axis=1)
        sim = scores[np.arange(len(scores)), idx]
        return np.where(sim >= threshold, idx, -1).astype(np.int64), sim.astype(np.float32)

    def label(self, faces: np.ndarray, threshold: float) -> tuple[list[str | None], list[float | None]]:
        """Names (None: unlabelled) and their similarities (None when unlabelled), as lists."""
        idx, sim = self.best(faces, threshold)
        names = [self.names[i] if i >= 0 else None for i in idx.tolist()]
        sims = [round(float(s), 4) if i >= 0 else None for i, s in zip(idx.tolist(), sim.tolist(), strict=True)]
        return names, sims


def track_identities(
    track_ids: Sequence[int | None],
    identities: Sequence[str | None],
    similarities: Sequence[float | None],
) -> list[str | None]:
    """The identity of each face's track: the identity with the largest summed similarity
    among the track's labelled faces (ties: by name); None when no face of the track is labelled.

    Example:
        >>> track_identities([1, 1, 1, None], ["a", None, "b", "c"], [0.5, None, 0.45, 0.6])
        ['a', 'a', 'a', 'c']
    """
    weight: dict[Any, dict[str, float]] = {}
    keys = [("t", int(t)) if t is not None else ("f", i) for i, t in enumerate(track_ids)]
    for key, name, sim in zip(keys, identities, similarities, strict=True):
        if name is not None:
            votes = weight.setdefault(key, {})
            votes[name] = votes.get(name, 0.0) + float(sim or 0.0)
    chosen = {k: min(v, key=lambda n: (-v[n], n)) for k, v in weight.items()}
    return [chosen.get(k) for k in keys]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a 1:1 check of a photo against one enrolled identity."""

    identity: str
    match: bool
    similarity: float
    threshold: float
    face: PhotoFace

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "match": self.match, "similarity": self.similarity,
                "threshold": self.threshold, "liveness": self.face.liveness, "query": self.face.to_json()}


def verify_face(face: PhotoFace, embedding: np.ndarray, name: str, enrolled: np.ndarray,
                threshold: float) -> VerifyResult:
    """Match `embedding` against the identity's enrolled (k, D) embeddings: best cosine ≥ threshold."""
    enrolled = np.asarray(enrolled, np.float32).reshape(-1, len(embedding))
    similarity = float(np.max(enrolled @ np.asarray(embedding, np.float32))) if len(enrolled) else -1.0
    return VerifyResult(identity=name, match=similarity >= threshold, similarity=round(similarity, 4),
                        threshold=threshold, face=face)
