"""Gallery matching, track identities, enrollment gates and photo collection (pure; real models where named)."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.errors import ConfigError, NoFaceError, SpoofError
from faceid_jobs.identity.matching import (
    EnrollmentError,
    GalleryMatrix,
    PhotoFace,
    check_enrollable,
    enrollment_photos,
    photo_face,
    prepare_enrollment,
    track_identities,
    verify_face,
)


def _matrix():
    # "a" has two embeddings (axes 0 and 1), "b" one (axis 2).
    emb = np.eye(3, dtype=np.float32)
    return GalleryMatrix.from_identities([("a", emb[:2]), ("b", emb[2:])])


@pytest.mark.parametrize(
    ("face", "threshold", "name", "sim"),
    [
        ([0.1, 0.9, 0.3], 0.5, "a", 0.9),  # best of a's two embeddings counts
        ([0.2, 0.1, 0.6], 0.5, "b", 0.6),
        ([0.2, 0.1, 0.3], 0.5, None, None),  # below the threshold: unlabelled
        ([0.4, 0.0, 0.4], 0.4, "a", 0.4),  # a tie goes to the first identity; threshold inclusive
    ],
)
def test_matrix_labels_with_best_identity_at_or_above_threshold(face, threshold, name, sim):
    names, sims = _matrix().label(np.array([face], np.float32), threshold)
    assert names == [name]
    assert sims == [pytest.approx(sim, abs=1e-4) if sim is not None else None]


def test_matrix_scores_interleaved_owners_and_empty_gallery():
    emb = np.eye(3, dtype=np.float32)
    m = GalleryMatrix(("a", "b"), emb, np.array([1, 0, 1]))
    np.testing.assert_allclose(m.scores(np.array([[0.2, 0.7, 0.5]], np.float32)), [[0.7, 0.5]], atol=1e-6)
    empty = GalleryMatrix.from_identities([], 3)
    assert empty.label(np.ones((2, 3), np.float32), 0.1) == ([None, None], [None, None])
    with pytest.raises(ConfigError, match="dimension"):
        m.scores(np.ones((1, 4), np.float32))


@pytest.mark.parametrize(
    ("tracks", "names", "sims", "expected"),
    [
        ([1, 1, 1], ["a", None, "b"], [0.5, None, 0.45], ["a", "a", "a"]),
        ([1, 1, 2], ["a", "b", None], [0.4, 0.41, None], ["b", "b", None]),  # weighted votes; track 2 unknown
        ([1, 1, 1], ["a", "b", "b"], [0.9, 0.4, 0.4], ["a", "a", "a"]),  # 0.9 for a beats 0.4 + 0.4 for b
        ([1, 1, 1], ["a", "b", "b"], [0.7, 0.4, 0.4], ["b", "b", "b"]),  # 0.8 for b beats 0.7 for a
        ([None, None], ["a", None], [0.5, None], ["a", None]),  # no track: each face alone
    ],
)
def test_track_identity_is_the_similarity_weighted_vote(tracks, names, sims, expected):
    assert track_identities(tracks, names, sims) == expected


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


def test_verify_face_uses_the_best_enrolled_embedding():
    enrolled = np.eye(2, dtype=np.float32)
    result = verify_face(_face(), np.array([0.6, 0.8], np.float32), "Ross", enrolled, 0.7)
    assert result.match and result.similarity == pytest.approx(0.8)
    assert not verify_face(_face(), np.array([0.6, 0.8], np.float32), "Ross", enrolled, 0.81).match
    assert set(result.to_json()) == {"identity", "match", "similarity", "threshold", "liveness", "query"}


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

    face, emb = photo_face(read_photo(portraits["Ross"]), "Ross.png", models)
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


@pytest.mark.models
def test_group_photo_uses_the_largest_face_unless_strict(models, media_dir):
    from faceid_jobs.images import read_photo

    image = read_photo(media_dir / "people" / "test" / "obama_and_biden.jpg")
    face, _ = photo_face(image, "two.jpg", models)
    assert face.faces_in_photo >= 2  # two people (and SCRFD finds a third, small face)
    x1, y1, x2, y2 = face.bbox
    assert (x2 - x1) * (y2 - y1) >= 150 * 200  # the largest
    with pytest.raises(EnrollmentError, match="faces, enrollment needs exactly one"):
        photo_face(image, "two.jpg", models, strict=True)
    with pytest.raises(NoFaceError):
        photo_face(np.zeros((200, 200, 3), np.uint8), "blank.jpg", models)
