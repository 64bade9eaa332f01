"""Query-side search on real photos: choosing the face, identities of labelled photos."""

from __future__ import annotations

import numpy as np
import pytest

from bench.common import PEOPLE_TEST_TRUTH
from faceid_jobs.errors import ConfigError, NoFaceError
from faceid_jobs.images import read_photo
from faceid_jobs.search.query import make_query

pytestmark = pytest.mark.models

EXPECTED = PEOPLE_TEST_TRUTH


@pytest.fixture(scope="module")
def gallery(media_dir, models):
    names, vectors = [], []
    for photo in sorted((media_dir / "people" / "train").glob("*/*")):
        q = make_query(read_photo(photo), str(photo), models)
        names.append(photo.parent.name)
        vectors.append(q.embedding)
    return names, np.stack(vectors)


@pytest.mark.parametrize(("photo", "people"), sorted(EXPECTED.items()))
def test_each_test_photo_face_matches_its_train_identity(media_dir, models, gallery, photo, people):
    names, vectors = gallery
    image = read_photo(media_dir / "people" / "test" / photo)
    found = set()
    for i in range(len(people)):
        q = make_query(image, photo, models, face_index=i)
        sims = vectors @ q.embedding
        best = int(np.argmax(sims))
        assert sims[best] >= 0.4, f"{photo} face {i}: best {names[best]} only {sims[best]:.2f}"
        found.add(names[best])
    assert found == people


def test_largest_face_is_default_and_index_out_of_range(media_dir, models):
    image = read_photo(media_dir / "people" / "test" / "obama_and_biden.jpg")
    q0 = make_query(image, "x", models)
    # two adults and, in the corner, a child
    assert q0.face.faces_in_photo == 3 and q0.face.face_index == 0
    w0 = q0.face.bbox[2] - q0.face.bbox[0]
    q1 = make_query(image, "x", models, face_index=1)
    assert q1.face.bbox[2] - q1.face.bbox[0] <= w0
    with pytest.raises(ConfigError, match="out of range"):
        make_query(image, "x", models, face_index=3)


@pytest.mark.parametrize("change", ["transpose", "pad"])
def test_transposed_or_padded_photo_gives_the_same_face(portraits, models, change):
    image = read_photo(portraits["Ross"])
    base = make_query(image, "ross", models)
    if change == "transpose":
        other = np.ascontiguousarray(image.transpose(1, 0, 2))
    else:
        other = np.zeros((image.shape[0] + 150, image.shape[1] + 90, 3), np.uint8)
        other[100:100 + image.shape[0], 40:40 + image.shape[1]] = image
    q = make_query(other, "ross2", models)
    x1, y1, x2, y2 = q.face.bbox
    mapped = (y1, x1, y2, x2) if change == "transpose" else (x1 - 40, y1 - 100, x2 - 40, y2 - 100)
    # Padding or transposing changes the letterbox scale, so boxes move by a few
    # pixels: compare by overlap, and by what matters, the embedding.
    assert iou(mapped, base.face.bbox) > (0.8 if change == "transpose" else 0.9)
    # A transposed face is a mirrored face after alignment; embeddings stay close.
    assert float(q.embedding @ base.embedding) > 0.8


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_photo_without_face(tmp_path, models):
    image = np.full((200, 300, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match=r"blank\.png: no face"):
        make_query(image, "blank.png", models)
