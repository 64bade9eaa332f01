"""The faces of a photo: detect, order, align, embed, score quality and liveness (pure given models).

The one path from a still image to faces, shared by search (the query face),
enrollment and verification (the face of each photo), the HTTP API's
``/liveness`` and `annotate` (every face of a frame). Footage goes through
`faceid_jobs.pipeline.chunk` instead (batched across frames, with reuse).

- `analyse`: every face of the image, largest first, with the embeddings,
  quality and liveness asked for (liveness only when liveness models are
  loaded).
- `pick_face`: which face of a photo is *the* face: the largest, or the
  ``face_index``-th largest; ``strict`` refuses a photo holding several.
- `face_of`: `analyse` + `pick_face` for one face, as a `PhotoFace` and its
  embedding; only the chosen face is embedded and scored.
- `check_live`: the liveness gate (`--require-live`, verify, enrollment).

Example:
    >>> face, embedding = face_of(read_photo("ross.jpg"), "ross.jpg", models)  # doctest: +SKIP
    >>> check_live(face, 0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faceid_jobs.errors import ConfigError, EnrollmentError, NoFaceError, SpoofError
from faceid_jobs.types import Faces

__all__ = ["PhotoFace", "analyse", "check_live", "describe", "detect_faces", "face_of", "pick_face"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoFace:
    """The face of a photo (the embedding travels apart: this is what is shown and stored).

    Attributes:
        photo: the photo's name, for messages and reports.
        bbox: (x1, y1, x2, y2) in photo pixels, rounded to 0.1.
        det_score: detector score.
        faces_in_photo: how many faces the photo holds.
        face_index: which of them, 0 = largest.
        quality: in [0, 1] (`faceid_jobs.pipeline.quality`), None when not measured.
        liveness: P(live), None when not measured.
    """

    photo: str
    bbox: tuple[float, float, float, float]
    det_score: float
    faces_in_photo: int = 1
    face_index: int = 0
    quality: float | None = None
    liveness: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"bbox": list(self.bbox)}


def detect_faces(image: np.ndarray, models: Any) -> Faces:
    """Every face of an (h, w, 3) uint8 BGR image, largest first (ties: detector order)."""
    faces = models.detector.detect(image)
    return faces[np.argsort(-faces.area, kind="stable")] if len(faces) > 1 else faces


def describe(image: np.ndarray, faces: Faces, models: Any, *, embed: bool = True, quality: bool = True,
             liveness: bool = True) -> Faces:
    """Fill `embedding` (n, D), `quality` (n,) and `liveness` (n,) of faces of `image`, as asked.

    Liveness is measured only when `models.liveness` is loaded; quality and
    embeddings share one alignment.
    """
    if not len(faces):
        return faces
    values: dict[str, np.ndarray] = {}
    if embed or quality:
        from faceid_jobs.models.align import align_faces

        crops = align_faces(image, faces.kps)
        if embed:
            values["embedding"] = np.asarray(models.embedder.embed(crops), np.float32)
        if quality:
            from faceid_jobs.pipeline.quality import face_quality

            values["quality"] = np.asarray(face_quality(crops, faces.xyxy, faces.score, faces.kps), np.float32)
    if liveness and models.liveness is not None:
        values["liveness"] = np.asarray(models.liveness.score(image, faces.xyxy), np.float32)
    return faces.with_fields(**values) if values else faces


def analyse(image: np.ndarray, models: Any, *, embed: bool = True, liveness: bool = True,
            quality: bool = True) -> Faces:
    """Every face of a BGR image, largest first, described (`describe`)."""
    return describe(image, detect_faces(image, models), models, embed=embed, quality=quality, liveness=liveness)


def pick_face(faces: Faces, photo: str, *, face_index: int | None = None, strict: bool = False) -> int:
    """Which of `faces` (largest first, as `detect_faces` orders them) is the photo's face.

    Raises:
        NoFaceError: no face.
        ConfigError: `face_index` out of range.
        EnrollmentError: several faces and `strict`.
    """
    if len(faces) == 0:
        raise NoFaceError(f"{photo}: no face found in the photo")
    if len(faces) > 1:
        if strict:
            raise EnrollmentError(f"{photo}: holds {len(faces)} faces, enrollment needs exactly one (--strict)")
        if face_index is None:
            log.info("%s: holds %d faces; using the largest", photo, len(faces))
    i = 0 if face_index is None else face_index
    if not 0 <= i < len(faces):
        raise ConfigError(f"{photo}: --face-index {i} out of range (the photo has {len(faces)} faces)")
    return i


def face_of(image: np.ndarray, photo: str, models: Any, *, face_index: int | None = None, strict: bool = False,
            liveness: bool = True, quality: bool = True) -> tuple[PhotoFace, np.ndarray]:
    """Detect, choose (`pick_face`), align, embed and score the face of a photo.

    Args:
        image: (h, w, 3) uint8 BGR.
        photo: name for messages.
        models: a `ModelSet`.
        face_index: which face, 0 = largest (default: the largest).
        strict: refuse a photo holding more than one face.
        liveness: measure P(live) (when `models.liveness` is loaded).
        quality: measure the face's quality.

    Returns:
        (the face, its (D,) float32 L2-normalised embedding).

    Raises:
        NoFaceError, ConfigError, EnrollmentError: see `pick_face`.
    """
    faces = detect_faces(image, models)
    i = pick_face(faces, photo, face_index=face_index, strict=strict)
    face = describe(image, faces[[i]], models, quality=quality, liveness=liveness)
    found = PhotoFace(
        photo=photo,
        bbox=tuple(round(float(v), 1) for v in face.xyxy[0]),
        det_score=round(float(face.score[0]), 4),
        faces_in_photo=len(faces),
        face_index=i,
        quality=None if face.quality is None else round(float(face.quality[0]), 4),
        liveness=None if face.liveness is None else round(float(face.liveness[0]), 4),
    )
    return found, np.asarray(face.embedding[0], np.float32)


def check_live(face: PhotoFace, threshold: float = 0.5) -> None:
    """Refuse a face whose P(live) is below `threshold` (`--require-live`, verify, enrollment).

    Raises:
        SpoofError: the face looks like a spoof (exit code 3, HTTP 422).
        ConfigError: no liveness was measured (liveness models not loaded).
    """
    if face.liveness is None:
        raise ConfigError(f"{face.photo}: cannot check liveness: no liveness models are configured")
    if face.liveness < threshold:
        raise SpoofError(f"{face.photo}: refused: the face does not look live "
                         f"(liveness {face.liveness:.2f} < live_threshold {threshold:g})")
