import os

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import VideoError
from faceid_jobs.video import Chunk, iter_chunk_frames, plan_chunks, probe_video


def test_probe_friends(friends_clip):
    info = probe_video(friends_clip)
    assert (info.width, info.height, info.frame_count) == (1280, 720, 632)
    assert info.fps == pytest.approx(23.976, abs=1e-3)
    assert info.duration_s == pytest.approx(26.36, abs=0.01)


def test_seeked_chunks_equal_sequential_decode(friends_clip):
    """A chunk that starts mid-video yields the same pixels as decoding from frame 0."""
    cap = cv2.VideoCapture(str(friends_clip))
    reference = {}
    for i in range(320):
        ok, frame = cap.read()
        assert ok
        if i in (0, 48, 96, 144, 300, 319):
            reference[i] = frame
    cap.release()
    info = probe_video(friends_clip)
    for start in (48, 96, 144, 300):
        frames = dict(iter_chunk_frames(friends_clip, Chunk(1, start, start + 20), info.fps, 0))
        assert sorted(frames)[:1] == [start]
        assert np.array_equal(frames[start], reference[start]), f"frame {start} differs after seek"
    frames = dict(iter_chunk_frames(friends_clip, Chunk(6, 300, 320), info.fps, 0))
    assert np.array_equal(frames[319], reference[319])


def test_all_chunks_cover_sampled_frames(friends_clip):
    info = probe_video(friends_clip)
    chunks = plan_chunks(info.frame_count, info.fps, 6.0)
    got = []
    for c in chunks:
        got += [i for i, _ in iter_chunk_frames(friends_clip, c, info.fps, 4.0,
                                                is_last=c.index == len(chunks) - 1)]
    assert len(got) == 106 and got == sorted(set(got))


@pytest.fixture()
def bad_videos(tmp_path, friends_clip):
    data = friends_clip.read_bytes()
    files = {
        "zero.mp4": b"",
        "random.mp4": os.urandom(200_000),
        "text.mp4": b"this is not a video\n" * 100,
        "head_only.mp4": data[: len(data) // 3],
    }
    paths = {}
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
        paths[name] = tmp_path / name
    return paths


@pytest.mark.parametrize("name", ["zero.mp4", "random.mp4", "text.mp4", "missing.mp4"])
def test_unreadable_videos_raise_one_line(bad_videos, tmp_path, name):
    path = bad_videos.get(name, tmp_path / name)
    with pytest.raises(VideoError) as exc:
        probe_video(path)
    message = str(exc.value)
    assert name in message and "\n" not in message


def test_truncated_video_fails_late_chunks_only(bad_videos, friends_clip):
    """A file cut short either fails to open or fails the chunks past the cut."""
    path = bad_videos["head_only.mp4"]
    try:
        info = probe_video(path)
    except VideoError as exc:
        assert "head_only.mp4" in str(exc)
        return
    chunks = plan_chunks(info.frame_count, info.fps, 2.0)
    outcomes = []
    for c in chunks:
        try:
            n = sum(1 for _ in iter_chunk_frames(path, c, info.fps, 4.0, is_last=c.index == len(chunks) - 1))
            outcomes.append(n > 0)
        except VideoError as exc:
            assert "head_only.mp4" in str(exc) and "truncated" in str(exc)
            outcomes.append(False)
    assert outcomes[0] and not outcomes[-1]
