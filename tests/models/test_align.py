"""Alignment: similarity transforms from synthetic landmarks, warps of synthetic images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceid_jobs.models.align import ARCFACE_TEMPLATE, align_faces, similarity_transform, template


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]], np.float64)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_template_maps_to_identity():
    m = similarity_transform(ARCFACE_TEMPLATE)
    assert m.shape == (2, 3)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)


@pytest.mark.parametrize(
    ("scale", "angle", "tx", "ty"),
    [
        (1.0, 0.0, 10.0, -5.0),  # translation only
        (2.0, 0.0, 0.0, 0.0),  # scale only
        (0.5, 30.0, 100.0, 40.0),
        (3.7, -45.0, -12.0, 250.0),
        (1.2, 170.0, 5.0, 5.0),  # upside-down face
    ],
)
def test_known_similarity_is_recovered(scale, angle, tx, ty):
    truth = _similarity(scale, angle, tx, ty)
    # landmarks in an image = the inverse transform of the template
    inv = np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2]
    kps = _apply(inv, ARCFACE_TEMPLATE.astype(np.float64))
    m = similarity_transform(kps)
    np.testing.assert_allclose(m, truth, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(_apply(m.astype(np.float64), kps), ARCFACE_TEMPLATE, atol=1e-3)


def test_noisy_landmarks_give_least_squares_fit():
    rng = np.random.default_rng(0)
    truth = _similarity(0.8, 12.0, 3.0, -7.0)
    inv = np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2]
    kps = _apply(inv, ARCFACE_TEMPLATE.astype(np.float64)) + rng.normal(0, 0.5, (5, 2))
    m = similarity_transform(kps)
    np.testing.assert_allclose(m, truth, atol=0.1 * 8)  # translation absorbs most of the noise
    np.testing.assert_allclose(m[:, :2], truth[:, :2], atol=0.05)
    # deterministic
    np.testing.assert_array_equal(m, similarity_transform(kps))


def test_mirrored_landmarks_are_not_fitted_with_a_reflection():
    mirrored = ARCFACE_TEMPLATE.copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]
    m = similarity_transform(mirrored)
    assert np.linalg.det(m[:, :2].astype(np.float64)) > 0


def test_degenerate_landmarks_do_not_crash():
    m = similarity_transform(np.full((5, 2), 50.0))
    assert np.isfinite(m).all()


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.zeros((5, 3)), np.zeros(10)])
def test_wrong_landmark_shape(bad):
    with pytest.raises(ValueError):
        similarity_transform(bad)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(112, ARCFACE_TEMPLATE), (224, ARCFACE_TEMPLATE * 2)],
)
def test_template_scales(size, expected):
    np.testing.assert_allclose(template(size), expected, rtol=1e-6)


def test_align_with_template_landmarks_copies_the_crop():
    rng = np.random.default_rng(1)
    image = np.zeros((300, 400, 3), np.uint8)
    patch = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    image[50:162, 70:182] = patch
    kps = ARCFACE_TEMPLATE + np.array([70, 50], np.float32)
    out = align_faces(image, kps[None])
    assert out.shape == (1, 112, 112, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], patch)


def test_align_scaled_face_and_zero_border():
    # a face twice the template size, at the image's top-left corner, partly outside
    image = np.full((200, 200, 3), 255, np.uint8)
    kps = (ARCFACE_TEMPLATE * 2 - np.array([100, 100], np.float32))[None]
    out = align_faces(image, np.concatenate([kps, kps]))
    assert out.shape == (2, 112, 112, 3)
    assert (out[:, :40, :40] == 0).all()  # left/top of the crop is outside the image
    assert (out[:, 60:, 60:] == 255).all()


def test_align_no_faces():
    out = align_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 5, 2), np.float32))
    assert out.shape == (0, 112, 112, 3)


@pytest.mark.parametrize(
    ("image", "kps"),
    [
        (np.zeros((10, 10), np.uint8), np.zeros((1, 5, 2))),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2))),
    ],
)
def test_align_rejects_bad_shapes(image, kps):
    with pytest.raises(ValueError):
        align_faces(image, kps)
