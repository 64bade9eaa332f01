"""The sampling grid the peers share with faceid-jobs, without importing faceid-jobs.

The peers run in their own virtualenvs, which do not have the project installed,
so the rule of `faceid_jobs.video.chunks.sampled_frames` is restated here (the
test `tests/bench/test_timing_render.py` checks both give the same frames).
"""

from __future__ import annotations

import numpy as np


def sampled_frames(start: int, stop: int, fps: float, sample_fps: float) -> np.ndarray:
    """Frame indices in [start, stop) to analyse; every frame when sample_fps is 0 or ≥ fps."""
    frames = np.arange(start, stop, dtype=np.int64)
    if sample_fps <= 0 or sample_fps >= fps:
        return frames
    ratio = sample_fps / fps
    bucket = np.floor(frames * ratio + 1e-9).astype(np.int64)
    prev = np.floor((frames - 1) * ratio + 1e-9).astype(np.int64)
    return frames[(bucket != prev) | (frames == 0)]
