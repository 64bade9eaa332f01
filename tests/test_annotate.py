"""Annotated video: drawing (pure), sources, frame count and fps kept (a stand-in model set; the real
models run in tests/cli/test_enrollment_cli.py)."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from faceid_jobs.annotate import FaceLabel, annotate_video, draw_faces, open_source
from faceid_jobs.errors import ConfigError, VideoTooLargeError
from faceid_jobs.identity.matching import GalleryMatrix
from faceid_jobs.types import Faces


@pytest.mark.parametrize(
    ("face", "color"),
    [
        (FaceLabel((10, 30, 60, 90), "Ross", 0.61, 0.98), (60, 200, 60)),
        (FaceLabel((10, 30, 60, 90), None, None, 0.98), (0, 165, 255)),
        (FaceLabel((10, 30, 60, 90), "Ross", 0.61, 0.2), (40, 40, 230)),  # a spoof is red whoever it is
        (FaceLabel((0, 0, 30, 30), None, None, None), (0, 165, 255)),  # caption fits inside the frame
    ],
)
def test_draw_faces_draws_box_in_its_colour_and_leaves_the_input(face, color):
    frame = np.zeros((120, 160, 3), np.uint8)
    out = draw_faces(frame, [face])
    assert out.shape == frame.shape and not frame.any()
    _, y1, x2, y2 = (round(v) for v in face.bbox)
    assert tuple(int(c) for c in out[(y1 + y2) // 2, x2]) == color
    assert (out == np.array(color, np.uint8)).all(axis=2).sum() > 100


def test_open_source_refuses_missing_files_and_unopenable_sources(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(ConfigError):
        open_source(str(tmp_path / "junk.mp4"))


class _Detector:
    """One fixed face per frame."""

    def detect(self, image, frame_idx=0):
        kps = np.array([[[30, 40], [50, 40], [40, 50], [32, 60], [48, 60]]], np.float32)
        return Faces(np.array([[20, 25, 60, 70]], np.float32), np.array([0.9], np.float32), kps,
                     np.array([frame_idx], np.int64))


class _Embedder:
    def embed(self, crops, batch_size=64):
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(crops), 1))


def _video(path, frames=12, fps=12.5, size=(96, 80)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i * 10, np.uint8))
    writer.release()
    return path


def test_annotate_keeps_frame_count_size_and_fps(tmp_path):
    source = _video(tmp_path / "in.mp4")
    models = SimpleNamespace(detector=_Detector(), embedder=_Embedder(), liveness=None)
    matrix = GalleryMatrix.from_identities([("Ross", np.array([[1.0, 0.0]], np.float32))])
    seen = []
    result = annotate_video(str(source), tmp_path / "out" / "ann.mp4", models, matrix, 0.4, detect_every=2,
                            progress=lambda done, total: seen.append((done, total)))
    assert (result.frames, result.width, result.height) == (12, 96, 80)
    assert result.faces == 6 and result.identified == 6  # every 2nd frame analysed
    assert seen[-1] == (12, 12)
    cap = cv2.VideoCapture(result.output)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)
    ok, frame = cap.read()
    assert ok and frame.shape == (80, 96, 3)
    cap.release()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ann.mp4"]  # no temp file left
    assert stat.S_IMODE(os.stat(result.output).st_mode) == 0o600  # it shows faces, whatever the umask
    short = annotate_video(str(source), tmp_path / "short.mp4", models, matrix, 0.4, max_seconds=0.4)
    assert short.frames == 5


def test_frames_above_max_video_pixels_are_refused_before_decoding(tmp_path):
    source = _video(tmp_path / "in.mp4")  # 96×80
    with pytest.raises(VideoTooLargeError, match="max_video_pixels"):
        open_source(str(source), max_pixels=96 * 80 - 1)
    models = SimpleNamespace(detector=_Detector(), embedder=_Embedder(), liveness=None)
    matrix = GalleryMatrix.from_identities([("Ross", np.array([[1.0, 0.0]], np.float32))])
    with pytest.raises(VideoTooLargeError):
        annotate_video(str(source), tmp_path / "ann.mp4", models, matrix, 0.4, max_pixels=1000)
    assert not list(tmp_path.glob("*ann*"))
