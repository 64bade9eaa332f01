"""Enrollment photos: the gates, folder conventions, and real photos through them (real models where named)."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.errors import ConfigError, EnrollmentError, SpoofError
from faceid_jobs.identity.enrollment import check_enrollable, enrollment_photos, prepare_enrollment
from faceid_jobs.photo import PhotoFace, face_of


def _face(**kw):
    base = {"photo": "p.jpg", "bbox": (0.0, 0.0, 10.0, 10.0), "det_score": 0.9, "quality": 0.8, "liveness": 0.9,
            "faces_in_photo": 1}
    return PhotoFace(**(base | kw))


@pytest.mark.parametrize(
    ("face", "live_threshold", "error"),
    [
        (_face(), 0.5, None),
        (_face(liveness=0.3), 0.5, SpoofError),
        (_face(liveness=0.3), None, None),  # --no-liveness-check
        (_face(liveness=None), 0.5, ConfigError),  # no liveness models
        (_face(quality=0.2), 0.5, EnrollmentError),
        (_face(quality=0.2, liveness=0.1), 0.5, SpoofError),  # liveness is checked first
    ],
)
def test_enrollment_gates(face, live_threshold, error):
    if error is None:
        check_enrollable(face, min_quality=0.5, live_threshold=live_threshold)
    else:
        with pytest.raises(error):
            check_enrollable(face, min_quality=0.5, live_threshold=live_threshold)


def test_enrollment_photos_reads_both_folder_conventions(tmp_path):
    (tmp_path / "Ross.jpg").write_bytes(b"x")
    (tmp_path / "Rachel").mkdir()
    (tmp_path / "Rachel" / "1.png").write_bytes(b"x")
    (tmp_path / "Rachel" / "2.JPG").write_bytes(b"x")
    (tmp_path / "Rachel" / "notes.txt").write_text("x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    found = enrollment_photos(tmp_path)
    assert {k: [p.name for p in v] for k, v in found.items()} == {"Rachel": ["1.png", "2.JPG"], "Ross": ["Ross.jpg"]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no photos"):
        enrollment_photos(tmp_path / "empty")
    with pytest.raises(ConfigError, match="not a folder"):
        enrollment_photos(tmp_path / "Ross.jpg")


@pytest.mark.models
def test_portraits_pass_and_the_spoof_fails_the_gates(models, portraits, media_dir):
    from faceid_jobs.images import read_photo

    face, emb = face_of(read_photo(portraits["Ross"]), "Ross.png", models)
    assert face.faces_in_photo == 1 and face.quality > 0.7 and face.liveness > 0.9
    assert emb.shape == (models.embedder.dim,) and abs(float(np.linalg.norm(emb)) - 1) < 1e-3
    photos = {"Ross": [portraits["Ross"]], "Spoof": [media_dir / "liveness" / "spoof_print_1.jpg"]}
    accepted, failures = prepare_enrollment(photos, models, min_quality=0.5, live_threshold=0.5,
                                            all_or_nothing=False)
    assert list(accepted) == ["Ross"] and accepted["Ross"][0][0].photo == "Ross.png"
    [failure] = failures
    assert failure.name == "Spoof" and failure.exit_code == 3 and "live_threshold" in failure.error
    with pytest.raises(SpoofError):
        prepare_enrollment(photos, models, min_quality=0.5, live_threshold=0.5)


