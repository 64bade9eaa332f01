"""Gallery matching, track identities and 1:1 verification (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.errors import ConfigError
from faceid_jobs.identity.matching import GalleryMatrix, track_identities, verify_face
from faceid_jobs.photo import PhotoFace


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


def test_verify_face_uses_the_best_enrolled_embedding():
    enrolled = np.eye(2, dtype=np.float32)
    result = verify_face(_face(), np.array([0.6, 0.8], np.float32), "Ross", enrolled, 0.7)
    assert result.match and result.similarity == pytest.approx(0.8)
    assert not verify_face(_face(), np.array([0.6, 0.8], np.float32), "Ross", enrolled, 0.81).match
    assert set(result.to_json()) == {"identity", "match", "similarity", "threshold", "liveness", "query"}
