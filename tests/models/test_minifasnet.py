"""MiniFASNet liveness: the crop rule at image borders, names, fusion, and the real models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import ModelError
from faceid_jobs.models.minifasnet import (
    LivenessFusion,
    MiniFASNet,
    liveness_crop_box,
    scale_from_name,
    softmax,
)
from faceid_jobs.models.runtime import create_session
from faceid_jobs.models.scrfd import SCRFD

# image 640 wide × 480 high unless stated; boxes are (x1, y1, x2, y2)
CROP_CASES = [
    # centred, fits: 20×20 box × 2 about (320, 240)
    pytest.param((310, 230, 330, 250), 640, 480, 2.0, (300, 220, 340, 260), id="inside"),
    # left edge: shifted right, same size (40 wide)
    pytest.param((0, 230, 20, 250), 640, 480, 2.0, (0, 220, 40, 260), id="left"),
    # right edge: 619..639 → 40 wide ending at 639
    pytest.param((620, 230, 640, 250), 640, 480, 2.0, (599, 220, 639, 260), id="right"),
    pytest.param((310, 0, 330, 20), 640, 480, 2.0, (300, 0, 340, 40), id="top"),
    pytest.param((310, 460, 330, 480), 640, 480, 2.0, (300, 439, 340, 479), id="bottom"),
    pytest.param((0, 0, 20, 20), 640, 480, 2.0, (0, 0, 40, 40), id="top-left corner"),
    pytest.param((620, 460, 640, 480), 640, 480, 2.0, (599, 439, 639, 479), id="bottom-right corner"),
    # scale capped so the crop fits: 200 high box × 4 > 479 → scale 479/200
    pytest.param((220, 140, 420, 340), 640, 480, 4.0, (80, 0, 559, 479), id="capped by height"),
    # the reference rule with scale 2.7 on a typical face
    pytest.param((100, 100, 200, 220), 640, 480, 2.7, (15, 0, 285, 324), id="2.7 near top"),
    # box bigger than the image: scale capped by height (479/580), centred in x
    pytest.param((-50, -50, 700, 530), 640, 480, 2.7, (15, 0, 634, 479), id="box bigger than image"),
    # degenerate zero-size box still gives a valid crop
    pytest.param((10, 10, 10, 10), 640, 480, 2.0, (9, 9, 11, 11), id="zero-size box"),
]


@pytest.mark.parametrize(("xyxy", "w", "h", "scale", "expected"), CROP_CASES)
def test_liveness_crop_box(xyxy, w, h, scale, expected):
    got = liveness_crop_box(xyxy, w, h, scale)
    assert got == expected
    x1, y1, x2, y2 = got
    assert all(isinstance(v, int) for v in got)
    assert 0 <= x1 <= x2 <= w - 1 and 0 <= y1 <= y2 <= h - 1


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("minifasnet_v2_2.7_80x80.onnx", 2.7),
        ("minifasnet_v1se_4.0_80x80.onnx", 4.0),
        ("/some/dir/2.7_80x80_MiniFASNetV2.onnx", 2.7),
        ("4_0_0_80x80_MiniFASNetV1SE.onnx", 4.0),
        ("liveness.onnx", None),
    ],
)
def test_scale_from_name(name, scale):
    assert scale_from_name(name) == scale


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[0.0, 0.0, 0.0], [1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[1], [1, 0, 0], atol=1e-6)


@dataclass
class _Arg:
    name: str
    shape: list


class FakeLiveness:
    """Logits (0, live_logit, 0) for every crop; records what it was fed."""

    def __init__(self, live_logit: float, batch="batch"):
        self.live_logit, self.batch, self.fed = live_logit, batch, []

    def get_inputs(self):
        return [_Arg("input", [self.batch, 3, 80, 80])]

    def get_outputs(self):
        return [_Arg("output", [self.batch, 3])]

    def run(self, names, feeds):
        x = feeds["input"]
        self.fed.append(x)
        out = np.zeros((len(x), 3), np.float32)
        out[:, 1] = self.live_logit
        return [out]


def test_fusion_averages_softmax_class_1():
    a = MiniFASNet(FakeLiveness(10.0), 2.7)  # P(live) ≈ 1
    b = MiniFASNet(FakeLiveness(0.0), 4.0)  # P(live) = 1/3
    image = np.zeros((100, 100, 3), np.uint8)
    got = LivenessFusion([a, b]).score(image, np.array([[40, 40, 60, 60], [0, 0, 10, 10]], np.float32))
    assert got.shape == (2,)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, (1.0 + 1 / 3) / 2, atol=1e-3)
    assert LivenessFusion([a]).score(image, np.zeros((0, 4))).shape == (0,)


def test_crops_are_raw_bgr_floats():
    session = FakeLiveness(0.0)
    model = MiniFASNet(session, 1.0)
    image = np.zeros((100, 100, 3), np.uint8)
    image[..., 0] = 200  # blue
    model.probabilities(image, np.array([[10, 10, 50, 50]]))
    blob = session.fed[0]
    assert blob.shape == (1, 3, 80, 80)
    assert blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, 0], 200.0)
    np.testing.assert_allclose(blob[0, 1:], 0.0)


@pytest.mark.parametrize(("batch", "n", "calls"), [("batch", 5, 2), (1, 3, 3)])
def test_batches(batch, n, calls):
    session = FakeLiveness(0.0, batch)
    model = MiniFASNet(session, 2.7)
    model.probabilities(np.zeros((50, 50, 3), np.uint8), np.tile([[10, 10, 30, 30]], (n, 1)), batch_size=4)
    assert len(session.fed) == calls


def test_scale_needed():
    with pytest.raises(ModelError, match="scale"):
        MiniFASNet(FakeLiveness(0.0))
    assert MiniFASNet(FakeLiveness(0.0), name="x_4.0_80x80.onnx").scale == 4.0
    with pytest.raises(ModelError):
        LivenessFusion([])


# ---------------------------------------------------------------------------
# Real weights


@pytest.fixture(scope="module")
def fusion(weights_dir: Path) -> LivenessFusion:
    names = ["minifasnet_v2_2.7_80x80.onnx", "minifasnet_v1se_4.0_80x80.onnx"]
    models = [MiniFASNet(create_session(weights_dir / n, "cpu")) for n in names]
    assert [m.scale for m in models] == [2.7, 4.0]
    return LivenessFusion(models)


@pytest.mark.models
@pytest.mark.parametrize(("name", "live"), [("live_1.jpg", True), ("spoof_print_1.jpg", False)])
def test_live_and_spoof(fusion, weights_dir, media_dir, name, live):
    # cv2.imread applies the files' EXIF orientation (stored 640×480, rotated).
    image = cv2.imread(str(media_dir / "liveness" / name))
    assert image.shape[:2] == (640, 480)
    det = SCRFD(create_session(weights_dir / "det_500m.onnx", "cpu"))
    faces = det.detect(image, max_faces=1)
    assert len(faces) == 1
    p = fusion.score(image, faces.xyxy)
    assert p.shape == (1,)
    if live:
        assert p[0] > 0.8
    else:
        assert p[0] < 0.5
