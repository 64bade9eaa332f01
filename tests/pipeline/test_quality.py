"""Face quality: the four terms and their geometric mean, on tiny synthetic inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceid_jobs.models.align import ARCFACE_TEMPLATE
from faceid_jobs.pipeline.quality import face_quality, frontalness, sharpness, size_score

T = ARCFACE_TEMPLATE.astype(np.float64)
EYE_HALF = (T[1, 0] - T[0, 0]) / 2


def moved_nose(dx: float, dy: float = 0.0) -> np.ndarray:
    k = T.copy()
    k[2] += (dx, dy)
    return k


def rotated(kps: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return kps @ r.T


FRONTAL_CASES = [
    pytest.param(T, 0.998, id="template"),
    pytest.param(T * 3 + 500, 0.998, id="scaled and moved"),
    pytest.param(rotated(T, 90), 0.998, id="rolled 90 degrees: roll does not count"),
    pytest.param(rotated(T, 180), 0.998, id="upside down"),
    # nose over one eye: yaw = 1 (about 45 degrees)
    pytest.param(moved_nose(T[1, 0] - T[2, 0]), 1 / np.sqrt(2), id="nose over one eye"),
    pytest.param(moved_nose(6 * EYE_HALF), 0.16, id="profile: nose far outside the eyes"),
    pytest.param(np.tile(T[:1], (5, 1)), 0.0, id="all points equal"),
    pytest.param(np.stack([T[0], T[0], T[2], T[3], T[4]]), 0.0, id="eyes on top of each other"),
    pytest.param(T * [1, -1], 0.0, id="mouth above the eyes (mirrored vertically)"),
]


@pytest.mark.parametrize(("kps", "expected"), FRONTAL_CASES)
def test_frontalness(kps, expected):
    got = float(frontalness(np.asarray(kps)[None])[0])
    assert 0.0 <= got <= 1.0
    if expected is not None:
        assert got == pytest.approx(expected, abs=0.01)


def test_frontalness_falls_with_yaw_and_pitch():
    yaw = [float(frontalness(moved_nose(d * EYE_HALF)[None])[0]) for d in (0, 0.5, 1, 2, 4)]
    assert yaw == sorted(yaw, reverse=True) and yaw[2] == pytest.approx(1 / np.sqrt(2), abs=0.02)
    pitch = [float(frontalness(moved_nose(0, d)[None])[0]) for d in (0, 5, 10, 15)]
    assert pitch == sorted(pitch, reverse=True)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0, 0, 112, 112), 1.0),
        ((0, 0, 300, 200), 1.0),
        ((10, 10, 66, 210), 0.5),  # shorter side 56
        ((0, 0, 16, 40), 16 / 112),
        ((5, 5, 5, 50), 0.0),  # degenerate
    ],
)
def test_size_score(box, expected):
    assert float(size_score(np.array([box]))[0]) == pytest.approx(expected, abs=1e-6)


def checkerboard(cell: int = 4) -> np.ndarray:
    y, x = np.mgrid[:112, :112]
    grey = (((x // cell) + (y // cell)) % 2 * 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def test_sharpness_orders_flat_blurred_sharp():
    sharp = checkerboard()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    flat = np.full_like(sharp, 128)
    v = sharpness(np.stack([flat, blurred, sharp]))
    assert v[0] == 0.0 and v[0] < v[1] < v[2]
    assert sharpness(sharp[None, :, :, 0])[0] == pytest.approx(v[2], rel=1e-5)  # grey input


@pytest.mark.parametrize(
    ("change", "lower"),
    [
        ({"blur": 2.0}, True),
        ({"score": 0.55}, True),
        ({"box": (0, 0, 30, 30)}, True),
        ({"kps": moved_nose(4 * EYE_HALF)}, True),
        ({}, False),
    ],
)
def test_quality_drops_with_each_term(change, lower):
    crop = checkerboard()
    base = face_quality(crop[None], np.array([[0, 0, 120, 140]]), np.array([0.9]), T[None])[0]
    if "blur" in change:
        crop = cv2.GaussianBlur(crop, (0, 0), change["blur"])
    q = face_quality(crop[None], np.array([change.get("box", (0, 0, 120, 140))]),
                     np.array([change.get("score", 0.9)]), np.asarray(change.get("kps", T))[None])[0]
    assert 0.0 <= q <= 1.0 and 0.0 <= base <= 1.0
    assert (q < base - 0.02) if lower else q == pytest.approx(base)


def test_quality_of_nothing_and_of_a_flat_crop():
    assert face_quality(np.zeros((0, 112, 112, 3), np.uint8), np.zeros((0, 4)), np.zeros(0),
                        np.zeros((0, 5, 2))).shape == (0,)
    flat = np.zeros((1, 112, 112, 3), np.uint8)
    assert face_quality(flat, np.array([[0, 0, 112, 112]]), np.array([0.9]), T[None])[0] == 0.0
