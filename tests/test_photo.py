"""The photo path (`faceid_jobs.photo`): face choice, the liveness gate, analysis (real models where named)."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.errors import ConfigError, EnrollmentError, NoFaceError, SpoofError
from faceid_jobs.photo import PhotoFace, analyse, check_live, face_of, pick_face
from faceid_jobs.types import Faces


def _faces(n: int) -> Faces:
    xyxy = np.array([[0, 0, 10 * (n - i), 10 * (n - i)] for i in range(n)], np.float32).reshape(n, 4)
    return Faces(xyxy=xyxy, score=np.full(n, 0.9, np.float32), kps=np.zeros((n, 5, 2), np.float32),
                 frame_idx=np.zeros(n, np.int64))


@pytest.mark.parametrize(
    ("n", "face_index", "strict", "expected"),
    [
        (1, None, False, 0),
        (3, None, False, 0),  # the largest
        (3, 2, False, 2),
        (3, 3, False, ConfigError),  # out of range
        (0, None, False, NoFaceError),
        (2, None, True, EnrollmentError),  # strict: exactly one face
        (1, None, True, 0),
    ],
)
def test_pick_face(n, face_index, strict, expected):
    if isinstance(expected, int):
        assert pick_face(_faces(n), "p.jpg", face_index=face_index, strict=strict) == expected
    else:
        with pytest.raises(expected) as exc:
            pick_face(_faces(n), "p.jpg", face_index=face_index, strict=strict)
        assert "p.jpg" in str(exc.value)


def _face(liveness):
    return PhotoFace("q.jpg", (0, 0, 1, 1), 0.9, liveness=liveness)


@pytest.mark.parametrize(
    ("liveness", "error"),
    [(0.99, None), (0.5, None), (0.29, SpoofError), (None, ConfigError)],
)
def test_check_live(liveness, error):
    q = _face(liveness)
    if error is None:
        check_live(q, 0.5)
    else:
        with pytest.raises(error) as exc:
            check_live(q, 0.5)
        assert "q.jpg" in str(exc.value) and "\n" not in str(exc.value)
        if error is SpoofError:
            assert exc.value.exit_code == 3


@pytest.mark.models
def test_group_photo_analysis_is_largest_first_and_face_of_describes_only_the_chosen(models, media_dir):
    from faceid_jobs.images import read_photo

    image = read_photo(media_dir / "people" / "test" / "obama_and_biden.jpg")
    faces = analyse(image, models)
    assert len(faces) >= 2 and np.all(np.diff(faces.area) <= 0)
    assert faces.embedding.shape == (len(faces), models.embedder.dim) and faces.quality.shape == (len(faces),)
    assert faces.liveness is not None and faces.liveness.shape == (len(faces),)
    bare = analyse(image, models, embed=False, quality=False, liveness=False)
    assert bare.embedding is None and bare.quality is None and bare.liveness is None
    face, emb = face_of(image, "two.jpg", models, face_index=1)
    assert face.face_index == 1 and face.faces_in_photo == len(faces)
    np.testing.assert_allclose(emb, faces.embedding[1], atol=1e-5)
    assert face.liveness == pytest.approx(float(faces.liveness[1]), abs=1e-4)
    assert face_of(image, "two.jpg", models, liveness=False)[0].liveness is None

@pytest.mark.models
def test_group_photo_uses_the_largest_face_unless_strict(models, media_dir):
    from faceid_jobs.images import read_photo

    image = read_photo(media_dir / "people" / "test" / "obama_and_biden.jpg")
    face, _ = face_of(image, "two.jpg", models)
    assert face.faces_in_photo >= 2  # two people (and SCRFD finds a third, small face)
    x1, y1, x2, y2 = face.bbox
    assert (x2 - x1) * (y2 - y1) >= 150 * 200  # the largest
    with pytest.raises(EnrollmentError, match="faces, enrollment needs exactly one"):
        face_of(image, "two.jpg", models, strict=True)
    with pytest.raises(NoFaceError):
        face_of(np.zeros((200, 200, 3), np.uint8), "blank.jpg", models)
