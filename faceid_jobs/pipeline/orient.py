"""Which way up a chunk's frames are analysed: the `rotate` setting (pure given a detector).

`rotate` = 0, 90, 180 or 270 turns every decoded frame that many degrees
clockwise before detection. `rotate = "auto"` decides per chunk: each
sampled frame is detected upright first; only when it shows no face upright
is it also detected in the other three orientations. Each orientation scores
the detection scores of its faces whose landmarks look upright (the eyes
above the mouth, within 45°: SCRFD finds some sideways faces but predicts
their landmarks sideways too). A frame with faces upright, before any other
orientation showed one, settles the chunk as upright at once; otherwise,
once `EVIDENCE_FRAMES` probed frames held such a face or `MAX_PROBES` frames
were probed, the best orientation (ties go to 0) is used for the rest of the
chunk; frames probed so far are released with the detections already made
in that orientation. A chunk with no face in its first `MAX_PROBES` sampled
frames stays upright.

On upright footage this costs three extra detections only on the sampled
frames before the first one with an upright face, at most `MAX_PROBES` per
chunk (measured in docs/ARCHITECTURE.md §Rotation); it finds sideways or
upside-down footage that carries no rotation metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from faceid_jobs.types import Faces
from faceid_jobs.video.rotation import ROTATIONS, rotate_frame

__all__ = ["EVIDENCE_FRAMES", "MAX_PROBES", "OrientedFrame", "orient_frames", "parse_rotate", "upright_score"]

# A change to these or to the rule below changes rows: bump the "auto" version in
# `Settings.analysis_fingerprint`.
EVIDENCE_FRAMES = 2
MAX_PROBES = 6
_UPRIGHT_COS = float(np.cos(np.radians(45.0)))

Detect = Callable[[np.ndarray, int], Faces]


@dataclass(frozen=True)
class OrientedFrame:
    """A sampled frame turned for analysis, with its faces found there.

    Attributes:
        frame_idx: index in the video.
        image: the frame turned `rotation` degrees clockwise.
        faces: faces in `image`'s coordinates.
        rotation: degrees clockwise the decoded frame was turned.
    """

    frame_idx: int
    image: np.ndarray
    faces: Faces
    rotation: int


def parse_rotate(value: str) -> int | None:
    """The `rotate` setting as degrees, or None for "auto".

    Raises:
        ValueError: anything else.
    """
    if value == "auto":
        return None
    if value.strip().isdigit() and int(value) in ROTATIONS:
        return int(value)
    raise ValueError(f"rotate must be 0, 90, 180, 270 or auto, got {value!r}")


def upright_score(faces: Faces) -> float:
    """Summed detection score of the faces whose landmarks look upright.

    A face looks upright when the line from its eyes' midpoint to its mouth
    corners' midpoint points down the image within 45°.
    """
    if not len(faces):
        return 0.0
    down = faces.kps[:, 3:5].mean(axis=1) - faces.kps[:, 0:2].mean(axis=1)
    length = np.linalg.norm(down, axis=1)
    upright = (length > 0) & (down[:, 1] >= _UPRIGHT_COS * length)
    return float(faces.score[upright].sum())


def orient_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detect: Detect,
    rotate: str,
) -> Iterator[OrientedFrame]:
    """Turn and detect each `(frame_idx, image)` as `rotate` says, in order.

    Args:
        frames: the chunk's sampled frames, decoded (metadata rotation applied).
        detect: the detector, `detect(image, frame_idx)`.
        rotate: the `rotate` setting ("0", "90", "180", "270" or "auto").
    """
    fixed = parse_rotate(rotate)
    if fixed is not None:
        for idx, image in frames:
            turned = rotate_frame(image, fixed)
            yield OrientedFrame(idx, turned, detect(turned, idx), fixed)
        return
    yield from _auto(iter(frames), detect)


def _auto(frames: Iterator[tuple[int, np.ndarray]], detect: Detect) -> Iterator[OrientedFrame]:
    votes = dict.fromkeys(ROTATIONS, 0.0)
    # Probed frames wait (decoded, unturned) until the chunk's orientation is known.
    probed: list[tuple[int, np.ndarray, dict[int, Faces]]] = []
    evidence = 0
    for idx, image in frames:
        found = {0: detect(rotate_frame(image, 0), idx)}
        if upright_score(found[0]) == 0:  # no face upright: try the other three ways up
            found |= {r: detect(rotate_frame(image, r), idx) for r in ROTATIONS if r}
        scores = {r: upright_score(faces) for r, faces in found.items()}
        for r, s in scores.items():
            votes[r] += s
        evidence += any(s > 0 for s in scores.values())
        probed.append((idx, image, found))
        if scores[0] > 0 and not any(votes[r] for r in ROTATIONS if r):
            break  # faces upright, and no other way up showed any: the chunk is upright
        if evidence >= EVIDENCE_FRAMES or len(probed) >= MAX_PROBES:
            break
    if not probed:
        return
    best = max(ROTATIONS, key=lambda r: (votes[r], r == 0))
    for idx, image, found in probed:
        turned = rotate_frame(image, best)
        # A frame that showed faces upright was not tried turned: detected now if the chunk is.
        yield OrientedFrame(idx, turned, found[best] if best in found else detect(turned, idx), best)
    for idx, image in frames:
        turned = rotate_frame(image, best)
        yield OrientedFrame(idx, turned, detect(turned, idx), best)
