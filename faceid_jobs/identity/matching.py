"""Who is this face? Gallery matching, enrollment photo checks and 1:1 verification (pure given models).

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

**Enrollment photos.** `photo_face` finds the photo's face (the largest when
there are several, with a warning; `strict` refuses), aligns and embeds it,
and measures its quality (`faceid_jobs.pipeline.quality`) and, when liveness models
are loaded, its P(live). `check_enrollable` applies the quality and liveness
gates.

Measured on the Friends clip (every 6th frame, 225 faces, w600k_mbf, the six
portraits as gallery): at 0.4, 179 faces are labelled and none with a person
who is not in that shot; the highest similarity of a face to a portrait of
someone else is 0.14.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from faceid_jobs.errors import ConfigError, FaceIdError, NoFaceError, SpoofError

__all__ = [
    "PHOTO_SUFFIXES",
    "EnrollmentError",
    "GalleryMatrix",
    "PhotoFace",
    "PhotoFailure",
    "VerifyResult",
    "check_enrollable",
    "enrollment_photos",
    "photo_face",
    "prepare_enrollment",
    "track_identities",
    "verify_face",
]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

log = logging.getLogger(__name__)


class EnrollmentError(FaceIdError):
    """A photo cannot be enrolled: several faces with --strict, or too low a quality (exit 2)."""


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
class PhotoFace:
    """The face of an enrollment or verification photo (no embedding: that travels apart)."""

    photo: str
    bbox: tuple[float, float, float, float]
    det_score: float
    quality: float
    liveness: float | None
    faces_in_photo: int

    def to_json(self) -> dict[str, Any]:
        return {"photo": self.photo, "bbox": list(self.bbox), "det_score": self.det_score, "quality": self.quality,
                "liveness": self.liveness, "faces_in_photo": self.faces_in_photo}


def photo_face(image: np.ndarray, photo: str, models: Any, *, strict: bool = False) -> tuple[PhotoFace, np.ndarray]:
    """Detect, choose, align, embed and score the face of a photo.

    Args:
        image: (h, w, 3) uint8 BGR.
        photo: name for messages.
        models: a `ModelSet` (liveness measured when `models.liveness` is loaded).
        strict: refuse a photo holding more than one face.

    Returns:
        (the face, its (D,) float32 L2-normalised embedding).

    Raises:
        NoFaceError: no face in the photo.
        EnrollmentError: several faces and `strict`.
    """
    from faceid_jobs.models.align import align_faces
    from faceid_jobs.pipeline.quality import face_quality

    faces = models.detector.detect(image)
    if len(faces) == 0:
        raise NoFaceError(f"{photo}: no face found in the photo")
    if len(faces) > 1:
        if strict:
            raise EnrollmentError(f"{photo}: holds {len(faces)} faces, enrollment needs exactly one (--strict)")
        log.info("%s: holds %d faces; using the largest", photo, len(faces))
    face = faces[[int(np.argmax(faces.area))]]
    crop = align_faces(image, face.kps)
    embedding = models.embedder.embed(crop)[0]
    quality = float(face_quality(crop, face.xyxy, face.score, face.kps)[0])
    liveness = None
    if models.liveness is not None:
        liveness = round(float(models.liveness.score(image, face.xyxy)[0]), 4)
    found = PhotoFace(photo=photo, bbox=tuple(round(float(v), 1) for v in face.xyxy[0]),
                      det_score=round(float(face.score[0]), 4), quality=round(quality, 4),
                      liveness=liveness, faces_in_photo=len(faces))
    return found, np.asarray(embedding, np.float32)


def check_enrollable(face: PhotoFace, *, min_quality: float, live_threshold: float | None) -> None:
    """Apply the gates: liveness first (when `live_threshold` is not None), then quality.

    Raises:
        SpoofError: P(live) below `live_threshold` (exit 3).
        ConfigError: liveness asked for but not measured (no liveness models).
        EnrollmentError: quality below `min_quality`.
    """
    if live_threshold is not None:
        if face.liveness is None:
            raise ConfigError(f"{face.photo}: cannot check liveness: no liveness models are configured "
                              "(use --no-liveness-check to enrol without it)")
        if face.liveness < live_threshold:
            raise SpoofError(f"{face.photo}: refused: the face does not look live "
                             f"(liveness {face.liveness:.2f} < live_threshold {live_threshold:g})")
    if face.quality < min_quality:
        raise EnrollmentError(f"{face.photo}: face quality {face.quality:.2f} is below enroll_min_quality "
                              f"{min_quality:g} (small, blurred or turned away); use a clearer photo")


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


def enrollment_photos(folder: str | Path) -> dict[str, list[Path]]:
    """Photos of a folder by identity: ``DIR/NAME/*.jpg`` (one identity per sub-folder) and
    ``DIR/NAME.jpg`` (the file name is the identity); any of `PHOTO_SUFFIXES`.

    Raises:
        ConfigError: not a folder, or no photo in it.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    found: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            photos = sorted(p for p in entry.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
            if photos:
                found.setdefault(entry.name, []).extend(photos)
        elif entry.suffix.lower() in PHOTO_SUFFIXES and entry.is_file():
            found.setdefault(entry.stem, []).append(entry)
    if not found:
        raise ConfigError(f"{root}: no photos (expected DIR/NAME.jpg or DIR/NAME/*.jpg)")
    return found


@dataclass(frozen=True)
class PhotoFailure:
    """A photo that was not enrolled, and why (the error's exit code)."""

    name: str
    photo: str
    error: str
    exit_code: int


def prepare_enrollment(
    photos: dict[str, list[Path]],
    models: Any,
    *,
    min_quality: float,
    live_threshold: float | None,
    strict: bool = False,
    all_or_nothing: bool = True,
    read: Callable[[Path], np.ndarray] | None = None,
    on_photo: Callable[[str, PhotoFace], None] | None = None,
) -> tuple[dict[str, list[tuple[PhotoFace, np.ndarray]]], list[PhotoFailure]]:
    """Read, embed and check every photo.

    Args:
        photos: identity name → its photo files.
        models: a `ModelSet` (with liveness models when `live_threshold` is set).
        min_quality: `enroll_min_quality`.
        live_threshold: `live_threshold`, or None to skip the liveness check.
        strict: refuse photos with several faces.
        all_or_nothing: raise the first failure; otherwise an identity with
            a failing photo is left out (all its photos) and the failure listed.
        read: photo reader (default `faceid_jobs.images.read_photo`).
        on_photo: called with (name, face) for each accepted photo.

    Returns:
        (name → [(face, embedding)] of the identities whose photos all passed, failures).
    """
    from faceid_jobs.images import read_photo

    read = read or read_photo
    accepted: dict[str, list[tuple[PhotoFace, np.ndarray]]] = {}
    failures: list[PhotoFailure] = []
    for name, files in photos.items():
        items = []
        for path in files:
            try:
                face, embedding = photo_face(read(path), str(path), models, strict=strict)
                check_enrollable(face, min_quality=min_quality, live_threshold=live_threshold)
            except FaceIdError as exc:
                if all_or_nothing:
                    raise
                failures.append(PhotoFailure(name, str(path), str(exc), int(exc.exit_code)))
                items = None
                break
            face = replace(face, photo=Path(path).name)
            if on_photo:
                on_photo(name, face)
            items.append((face, embedding))
        if items:
            accepted[name] = items
    return accepted, failures
