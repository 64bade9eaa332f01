"""Enrollment photos: which photos, their faces and the gates they must pass (pure given models).

`enrollment_photos` lists a folder's photos by identity; `prepare_enrollment`
reads each, finds its face by the one photo path (`faceid_jobs.photo.face_of`:
the largest when there are several, with a warning; `strict` refuses), and
`check_enrollable` applies the gates: liveness (`faceid_jobs.photo.check_live`)
first, then quality (`enroll_min_quality`). The accepted faces go to
`faceid_jobs.identity.gallery.enroll`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from faceid_jobs.errors import ConfigError, EnrollmentError, FaceIdError
from faceid_jobs.photo import PhotoFace, check_live, face_of

__all__ = [
    "PHOTO_SUFFIXES",
    "PhotoFailure",
    "check_enrollable",
    "enrollable_face",
    "enrollment_photos",
    "prepare_enrollment",
]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def check_enrollable(face: PhotoFace, *, min_quality: float, live_threshold: float | None) -> None:
    """Apply the gates: liveness first (when `live_threshold` is not None), then quality.

    Raises:
        SpoofError: P(live) below `live_threshold` (exit 3).
        ConfigError: liveness asked for but not measured (no liveness models).
        EnrollmentError: quality below `min_quality`.
    """
    if live_threshold is not None:
        check_live(face, live_threshold)
    if face.quality is None or face.quality < min_quality:
        raise EnrollmentError(f"{face.photo}: face quality {face.quality or 0:.2f} is below enroll_min_quality "
                              f"{min_quality:g} (small, blurred or turned away); use a clearer photo")


def enrollable_face(image: np.ndarray, photo: str, models: Any, *, min_quality: float,
                    live_threshold: float | None, strict: bool = False) -> tuple[PhotoFace, np.ndarray]:
    """The face of one enrollment photo (`faceid_jobs.photo.face_of`) once it passed `check_enrollable`.

    Raises:
        NoFaceError, EnrollmentError, SpoofError, ConfigError: as `face_of` and `check_enrollable`.
    """
    face, embedding = face_of(image, photo, models, strict=strict, liveness=live_threshold is not None)
    check_enrollable(face, min_quality=min_quality, live_threshold=live_threshold)
    return face, embedding


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
    max_pixels: int | None = None,
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
        read: photo reader (default `faceid_jobs.images.read_photo`, refusing images above `max_pixels`).
        max_pixels: `max_image_pixels` (default: its default, 50 MP).
        on_photo: called with (name, face) for each accepted photo.

    Returns:
        (name → [(face, embedding)] of the identities whose photos all passed, failures).
    """
    from faceid_jobs.images import MAX_IMAGE_PIXELS, read_photo

    limit = max_pixels or MAX_IMAGE_PIXELS
    read = read or (lambda path: read_photo(path, limit))
    accepted: dict[str, list[tuple[PhotoFace, np.ndarray]]] = {}
    failures: list[PhotoFailure] = []
    for name, files in photos.items():
        items = []
        for path in files:
            try:
                face, embedding = enrollable_face(read(path), str(path), models, min_quality=min_quality,
                                                  live_threshold=live_threshold, strict=strict)
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
