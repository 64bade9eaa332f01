"""Quarter turns of frames and of face geometry back to the decoded frame; the auto orientation rule."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.config import Settings
from faceid_jobs.errors import ConfigError
from faceid_jobs.pipeline.orient import MAX_PROBES, orient_frames, parse_rotate, upright_score
from faceid_jobs.types import Faces
from faceid_jobs.video.rotation import rotate_frame, unrotate_faces, unrotate_points, unturned_size


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_points_map_back_to_the_pixel_they_came_from(degrees):
    rng = np.random.default_rng(degrees)
    image = rng.integers(0, 255, (5, 8, 3), dtype=np.uint8)  # 8 wide, 5 high
    turned = rotate_frame(image, degrees)
    width, height = unturned_size(turned.shape, degrees)
    assert (width, height) == (8, 5)
    for ty in range(turned.shape[0]):
        for tx in range(turned.shape[1]):
            x, y = unrotate_points(np.array([tx + 0.5, ty + 0.5]), degrees, width, height)
            assert (turned[ty, tx] == image[int(y), int(x)]).all()


def test_faces_map_back_as_ordered_boxes_and_landmarks():
    faces = Faces(xyxy=np.array([[10, 20, 30, 60]], np.float32), score=np.ones(1, np.float32),
                  kps=np.array([[[12, 25], [28, 25], [20, 40], [14, 50], [26, 50]]], np.float32),
                  frame_idx=np.zeros(1, np.int64))
    back = unrotate_faces(faces, 90, width=200, height=100)  # turned frame is 100 wide, 200 high
    assert back.xyxy.tolist() == [[20, 70, 60, 90]]
    assert back.kps[0, 0].tolist() == [25, 88]


def face(kps, score=0.9):
    kps = np.asarray(kps, np.float32)[None]
    lo, hi = kps[0].min(0), kps[0].max(0)
    return Faces(xyxy=np.array([[*lo, *hi]], np.float32), score=np.array([score], np.float32), kps=kps,
                 frame_idx=np.zeros(1, np.int64))


UPRIGHT = [[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]]
SIDEWAYS = [[30, 10], [30, 30], [20, 20], [10, 12], [10, 28]]  # mouth to the left of the eyes


def test_upright_score_counts_faces_whose_eyes_are_above_the_mouth():
    assert upright_score(face(UPRIGHT, 0.8)) == pytest.approx(0.8)
    assert upright_score(face(SIDEWAYS)) == 0.0
    assert upright_score(Faces.empty()) == 0.0


def fake_detector(good: int, calls: list):
    """Finds an upright face only in frames turned `good` degrees (recognised by their shape)."""
    def detect(image, idx):
        calls.append((idx, image.shape[:2]))
        return face(UPRIGHT) if image[0, 0, 0] == 1 + good // 90 else Faces.empty()
    return detect


def frames(n, marks=(1, 2, 3, 4)):
    # A 4x4 frame whose corners say which turn (1 + degrees / 90) brings them to the top-left pixel.
    base = np.zeros((4, 4, 3), np.uint8)
    base[0, 0], base[3, 0], base[3, 3], base[0, 3] = marks  # after a turn of r, the r-mark is at [0, 0]
    return [(i, base) for i in range(n)]


@pytest.mark.parametrize("good", [0, 90, 180, 270])
def test_auto_picks_the_turn_that_shows_upright_faces(good):
    calls = []
    out = list(orient_frames(frames(10), fake_detector(good, calls), "auto"))
    assert [f.frame_idx for f in out] == list(range(10))
    assert {f.rotation for f in out} == {good} and all(len(f.faces) == 1 for f in out)
    # Upright: one detection a frame. Turned: two frames probed in four ways, then one a frame.
    assert len(calls) == (10 if good == 0 else 2 * 4 + 8)


def test_auto_probes_only_the_frames_before_the_first_upright_face():
    calls = []
    # Two empty frames (all marks 0), then upright faces (mark 1 at the top-left, as `fake_detector(0)` wants).
    empty = frames(2, marks=(0, 0, 0, 0))
    out = list(orient_frames(empty + frames(10)[2:], fake_detector(0, calls), "auto"))
    assert [f.rotation for f in out] == [0] * 10 and [len(f.faces) for f in out] == [0, 0] + [1] * 8
    assert len(calls) == 2 * 4 + 8


def test_auto_without_faces_stays_upright_after_a_few_probes():
    calls = []
    out = list(orient_frames(frames(10), lambda image, idx: calls.append(idx) or Faces.empty(), "auto"))
    assert {f.rotation for f in out} == {0} and len(out) == 10
    assert len(calls) == MAX_PROBES * 4 + (10 - MAX_PROBES)


def test_fixed_rotation_turns_every_frame_once():
    calls = []
    out = list(orient_frames(frames(3), fake_detector(90, calls), "90"))
    assert [f.rotation for f in out] == [90] * 3 and len(calls) == 3


def test_rotate_setting_values_and_analysis_id():
    assert parse_rotate("auto") is None and parse_rotate("270") == 270
    with pytest.raises(ValueError):
        parse_rotate("45")
    with pytest.raises(ConfigError, match="rotate must be"):
        Settings(rotate="45")
    ids = {"detector": "d", "embedder": "e"}
    base = Settings().analysis_fingerprint(ids)
    # 0 leaves the id of earlier versions; any other turn (and auto) names its own analysis.
    assert len({base, Settings(rotate="90").analysis_fingerprint(ids),
                Settings(rotate="auto").analysis_fingerprint(ids)}) == 3


def test_rotate_may_be_a_number_in_a_config_file(tmp_path):
    from faceid_jobs.config import load_settings

    path = tmp_path / "c.toml"
    path.write_text("rotate = 90\n")
    assert load_settings(path, environ={}).rotate == "90"
