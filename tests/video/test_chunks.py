import numpy as np
import pytest

from faceid_jobs.video.chunks import plan_chunks, sampled_frames


@pytest.mark.parametrize(
    ("frames", "fps", "seconds", "expected"),
    [
        (100, 10.0, 4.0, [(0, 40), (40, 80), (80, 100)]),
        (632, 23.976, 30.0, [(0, 632)]),
        (632, 23.976, 2.0, [(i * 48, min(632, (i + 1) * 48)) for i in range(14)]),
        (0, 25.0, 2.0, []),
        (5, 25.0, 0.01, [(i, i + 1) for i in range(5)]),
    ],
)
def test_plan_chunks(frames, fps, seconds, expected):
    chunks = plan_chunks(frames, fps, seconds)
    assert [(c.start, c.stop) for c in chunks] == expected
    assert [c.index for c in chunks] == list(range(len(expected)))


@pytest.mark.parametrize(
    ("start", "stop", "fps", "sample_fps", "expected"),
    [
        (0, 10, 10.0, 2.0, [0, 5]),
        (0, 5, 10.0, 0.0, [0, 1, 2, 3, 4]),
        (0, 5, 10.0, 30.0, [0, 1, 2, 3, 4]),
        (3, 12, 10.0, 2.0, [5, 10]),
    ],
)
def test_sampled_frames(start, stop, fps, sample_fps, expected):
    assert sampled_frames(start, stop, fps, sample_fps).tolist() == expected


@pytest.mark.parametrize("chunk_seconds", [1.0, 2.0, 3.3, 30.0])
def test_sampling_does_not_depend_on_chunking(chunk_seconds):
    fps, n = 23.976, 632
    whole = sampled_frames(0, n, fps, 4.0)
    parts = np.concatenate([sampled_frames(c.start, c.stop, fps, 4.0)
                            for c in plan_chunks(n, fps, chunk_seconds)])
    assert parts.tolist() == whole.tolist()
    # about 4 per second
    assert abs(len(whole) - n / fps * 4) <= 1
