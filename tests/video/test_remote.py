"""Remote videos read in byte ranges (S3 on moto, 127.0.0.1): the same fingerprint, properties
and frames as the local file, from a fraction of its bytes."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.errors import VideoError
from faceid_jobs.storage.s3 import BLOCK_CACHE, S3Video, list_s3_sources, make_client
from faceid_jobs.video import iter_chunk_frames, plan_chunks, probe_video, video_fingerprint
from faceid_jobs.video.fingerprint import stream_fingerprint
from tests.cli.runner import cut_clip


class _Counting:
    """A boto3 client that counts the bytes its ranged GETs return."""

    def __init__(self) -> None:
        self.client = make_client()
        self.ranges: list[str] = []
        self.bytes = 0

    def get_object(self, **kwargs):
        self.ranges.append(kwargs["Range"])
        resp = self.client.get_object(**kwargs)
        data = resp["Body"].read()
        self.bytes += len(data)
        return {**resp, "Body": _Body(data)}


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


@pytest.fixture(scope="module")
def long_clip(friends_clip, tmp_path_factory):
    """The whole Friends clip re-encoded (mp4v: several MiB, well above the fingerprint's samples)."""
    return cut_clip(friends_clip, tmp_path_factory.mktemp("long") / "long.mp4", 30.0)


@pytest.fixture()
def remote(s3_bucket, long_clip):
    make_client().upload_file(str(long_clip), s3_bucket, "footage/long.mp4")
    (source,) = list_s3_sources(f"s3://{s3_bucket}/footage/", frozenset({".mp4"}))
    BLOCK_CACHE.clear()
    counting = _Counting()
    yield S3Video(source, client=counting), counting
    BLOCK_CACHE.clear()


def test_listing_gives_the_identity(remote, long_clip):
    video, _ = remote
    assert video.size == long_clip.stat().st_size and video.etag


def test_fingerprint_reads_only_the_samples(remote, long_clip):
    video, counting = remote
    size = long_clip.stat().st_size
    assert size > 4 << 20
    assert stream_fingerprint(video.open(readahead=False), size) == video_fingerprint(long_clip)
    assert counting.bytes <= (2 << 20) + 16 * (80 << 10) + (32 << 10)  # edges, 16 samples, block rounding


def test_probe_and_a_chunk_read_only_their_part(remote, long_clip):
    video, counting = remote
    local = probe_video(long_clip)
    info = probe_video(video)
    assert (info.fps, info.frame_count, info.width, info.height) == (
        local.fps, local.frame_count, local.width, local.height)
    probed = counting.bytes
    assert probed < 0.2 * video.size
    chunks = plan_chunks(info.frame_count, info.fps, 5.0)
    middle = chunks[len(chunks) // 2]
    remote_frames = list(iter_chunk_frames(video, middle, info.fps, 2.0))
    local_frames = list(iter_chunk_frames(long_clip, middle, info.fps, 2.0))
    assert [i for i, _ in remote_frames] == [i for i, _ in local_frames]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(remote_frames, local_frames, strict=True))
    share = middle.frames / info.frame_count
    assert counting.bytes - probed < (share + 0.15) * video.size, (counting.bytes - probed, video.size, share)


def test_a_replaced_object_is_refused(remote, s3_bucket, friends_clip):
    video, _ = remote
    make_client().upload_file(str(friends_clip), s3_bucket, "footage/long.mp4")  # new ETag
    with pytest.raises(VideoError, match="changed while being read"):
        video.open().read(100)

