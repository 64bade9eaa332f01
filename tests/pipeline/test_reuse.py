"""Embedding reuse: each gate of `ReusePlanner` on synthetic faces, and the batcher's copying."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.config import Settings
from faceid_jobs.models import ModelSet
from faceid_jobs.models.align import ARCFACE_TEMPLATE
from faceid_jobs.pipeline.chunk import _FaceBatcher
from faceid_jobs.pipeline.reuse import (
    FrameFaces,
    ReusePlanner,
    ReuseRules,
    continuations,
    fresh_rows,
    thumbnails,
)
from faceid_jobs.types import Faces

BOX = np.array([100, 100, 200, 200], np.float32)
RULES = ReuseRules(max_age_s=0.5)


def moved(dx: float, dy: float = 0.0) -> np.ndarray:
    return BOX + np.array([dx, dy, dx, dy], np.float32)


def face_crop(seed: int = 0) -> np.ndarray:
    """A 112×112 crop with a random blocky 'face' pattern (seeded)."""
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, 255, (14, 14), dtype=np.uint8).repeat(8, axis=0).repeat(8, axis=1)
    return np.repeat(pattern[:, :, None], 3, axis=2)


def frame(t: float, *boxes: np.ndarray, crops: list[np.ndarray] | None = None,
          quality: list[float] | None = None) -> FrameFaces:
    n = len(boxes)
    crops = crops if crops is not None else [face_crop(i) for i in range(n)]
    return FrameFaces(
        time_s=t,
        xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
        thumbs=thumbnails(np.stack(crops)) if n else np.zeros((0, 1), np.float32),
        quality=np.asarray(quality if quality is not None else [0.7] * n, np.float32),
    )


def sources(planner: ReusePlanner, *frames: FrameFaces) -> list[list[int]]:
    return [planner.plan(f).source.tolist() for f in frames]


def test_thumbnails_compare_pictures_not_brightness():
    a, b = face_crop(0), face_crop(1)
    brighter = np.clip(a.astype(np.int16) * 0.8 + 30, 0, 255).astype(np.uint8)
    t = thumbnails(np.stack([a, brighter, b, np.full_like(a, 128)]))
    assert t.shape == (4, 24 * 24)
    assert float(t[0] @ t[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(t[0] @ t[1]) > 0.99
    assert abs(float(t[0] @ t[2])) < 0.5
    assert not t[3].any()  # a flat crop is similar to nothing


def test_a_still_face_reuses_its_anchor_until_the_age_limit():
    planner = ReusePlanner(RULES)
    got = sources(planner, *(frame(t, BOX) for t in (0.0, 0.2, 0.4, 0.5, 0.6, 0.8)))
    # The anchor stays the face embedded at 0.0 (not the previous face) until it
    # is older than 0.5 s; the face at 0.6 is embedded and anchors the next.
    assert got == [[0], [0], [0], [0], [4], [4]]


def test_plan_marks_fresh_faces():
    planner = ReusePlanner(RULES)
    planner.plan(frame(0.0, BOX))
    plan = planner.plan(frame(0.04, BOX, moved(300)))
    assert plan.source.tolist() == [0, 2] and plan.fresh.tolist() == [False, True]


def test_reuse_off_embeds_every_face():
    planner = ReusePlanner(ReuseRules(max_age_s=0.0))
    assert sources(planner, frame(0.0, BOX), frame(0.04, BOX)) == [[0], [1]]


@pytest.mark.parametrize(
    ("box", "crop", "quality", "reused"),
    [
        pytest.param(moved(5, 3), 0, 0.7, True, id="small move: continued"),
        pytest.param(moved(40), 0, 0.7, False, id="IoU below 0.6"),
        pytest.param(np.array([90, 90, 210, 210], np.float32), 0, 0.7, False, id="20% larger: size gate"),
        pytest.param(BOX, 7, 0.7, False, id="another face in the same place: look gate"),
        pytest.param(BOX, 0, 0.8, False, id="clearly better quality: embedded itself"),
        pytest.param(BOX, 0, 0.74, True, id="quality within the margin"),
        pytest.param(BOX, 0, 0.3, True, id="worse quality: reused"),
    ],
)
def test_each_gate(box, crop, quality, reused):
    planner = ReusePlanner(RULES)
    planner.plan(frame(0.0, BOX, crops=[face_crop(0)], quality=[0.7]))
    plan = planner.plan(frame(0.04, box, crops=[face_crop(crop)], quality=[quality]))
    assert plan.source.tolist() == ([0] if reused else [1])


def test_a_frame_without_faces_ends_every_run():
    planner = ReusePlanner(RULES)
    assert sources(planner, frame(0.0, BOX), frame(0.04), frame(0.08, BOX)) == [[0], [], [1]]


def test_neighbours_continue_their_own_faces():
    left, right = BOX, moved(110)
    crops = [face_crop(0), face_crop(1)]
    planner = ReusePlanner(RULES)
    planner.plan(frame(0.0, left, right, crops=crops))
    # Listed in the other order (detection order follows the score): still matched by place.
    assert planner.plan(frame(0.04, right, left, crops=crops[::-1])).source.tolist() == [1, 0]


def test_continuations_are_one_to_one_and_gated():
    prev = np.array([BOX, moved(300)])
    cur = np.array([moved(2), moved(1), moved(150)])
    assert continuations(prev, cur, 0.6) == {1: 0}
    assert continuations(prev[:0], cur, 0.6) == {}


def test_rules_refuse_a_negative_age():
    with pytest.raises(ValueError, match="max_age_s"):
        ReuseRules(max_age_s=-1)


def test_fresh_rows_points_each_face_at_its_anchor_output():
    assert fresh_rows(np.array([0, 1, 0, 1, 4, 4])).tolist() == [0, 1, 0, 1, 2, 2]
    assert fresh_rows(np.zeros(0, np.int64)).tolist() == []
    with pytest.raises(ValueError, match="fresh"):
        fresh_rows(np.array([0, 0, 1]))  # face 2 points at a face that was itself reused


class _Embedder:
    """Fake embedder: a one-hot vector per call order, so copies can be traced."""

    dim = 64

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.seen = 0

    def embed(self, crops: np.ndarray, batch_size: int = 16) -> np.ndarray:
        self.calls.append(len(crops))
        out = np.eye(self.dim, dtype=np.float32)[self.seen : self.seen + len(crops)]
        self.seen += len(crops)
        return out


class _Liveness:
    def crops(self, image: np.ndarray, xyxy: np.ndarray) -> list[np.ndarray]:
        return [np.zeros((len(xyxy), 8, 8, 3), np.uint8)]

    def score_crops(self, crops: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
        return np.linspace(0.1, 0.9, len(crops[0]), dtype=np.float32)


def test_batcher_copies_anchor_outputs_across_batches():
    image = np.zeros((400, 600, 3), np.uint8)
    image[100:200, 100:200] = face_crop(0)[6:106, 6:106]
    kps = (ARCFACE_TEMPLATE * (100 / 112) + 100)[None]
    embedder = _Embedder()
    models = ModelSet(detector=None, embedder=embedder, liveness=_Liveness())  # type: ignore[arg-type]
    batcher = _FaceBatcher(models, Settings(embed_batch=2, liveness_batch=2, reuse_embedding_s=0.5))
    for i in range(8):  # 8 frames 0.2 s apart: fresh at 0.0, 0.6, 1.2
        faces = Faces(xyxy=BOX[None].copy(), score=np.ones(1, np.float32), kps=kps.astype(np.float32),
                      frame_idx=np.array([i * 5]))
        batcher.add(image, faces, i * 0.2)
    batcher.add(image, Faces.empty(), 1.6)
    out = batcher.finish()
    assert sum(embedder.calls) == 3 and embedder.calls == [2, 1]  # the anchor at 0.6 s was flushed first
    assert out.embedding.argmax(axis=1).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert out.liveness.tolist() == pytest.approx([0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1])
    assert out.quality is not None and len(out.quality) == 8
