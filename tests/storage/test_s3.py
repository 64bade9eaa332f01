"""S3Store against a real S3 HTTP endpoint (moto server on 127.0.0.1)."""

import io
import threading

import pytest

from faceid_jobs.errors import StoreError
from faceid_jobs.storage import open_store
from faceid_jobs.storage.s3 import S3Store, list_s3_videos, parse_s3_uri, s3_local_copy


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("s3://b", ("b", "")), ("s3://b/", ("b", "")), ("s3://b/p/q", ("b", "p/q/")), ("s3://b/p/", ("b", "p/"))],
)
def test_parse(uri, expected):
    assert parse_s3_uri(uri) == expected


def test_basic_operations(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/archive")
    assert isinstance(store, S3Store)
    store.check()
    store.put("a/one.bin", b"1")
    store.put("a/two.bin", b"22")
    store.put("b.json", b"{}")
    assert store.get("a/two.bin") == b"22"
    assert list(store.list("a/")) == ["a/one.bin", "a/two.bin"]
    assert list(store.list()) == ["a/one.bin", "a/two.bin", "b.json"]
    assert store.get_range("a/two.bin", 1, 10) == b"2"
    with store.open_read("a/two.bin") as f:
        assert f.read() == b"22"
    store.put_stream("big.bin", io.BytesIO(b"x" * 100_000), 100_000)
    assert len(store.get("big.bin")) == 100_000
    store.delete("a/one.bin")
    assert not store.exists("a/one.bin")
    with pytest.raises(KeyError):
        store.get("a/one.bin")


def test_conditional_writes_have_one_winner(s3_bucket):
    store = open_store(f"s3://{s3_bucket}")
    results = []
    barrier = threading.Barrier(6)

    def attempt(i):
        barrier.wait()
        results.append(store.put_if_absent("index/manifests/1.json", str(i).encode()))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    etag = store.etag("index/manifests/1.json")
    assert store.put_if_match("index/manifests/1.json", b"new", etag)
    assert not store.put_if_match("index/manifests/1.json", b"newer", etag)
    assert store.get("index/manifests/1.json") == b"new"


def test_missing_bucket_is_a_clear_error(s3_server):
    with pytest.raises(StoreError, match="no-such-bucket"):
        open_store("s3://no-such-bucket/x").check()


def test_video_listing_and_local_copy(s3_bucket, friends_clip):
    store = open_store(f"s3://{s3_bucket}")
    store.put("videos/a.mp4", friends_clip.read_bytes())
    store.put("videos/notes.txt", b"no")
    store.put("videos/deep/b.MOV", b"fake")
    found = list_s3_videos(f"s3://{s3_bucket}/videos/", frozenset({".mp4", ".mov"}))
    assert found == [f"s3://{s3_bucket}/videos/a.mp4", f"s3://{s3_bucket}/videos/deep/b.MOV"]
    with s3_local_copy(f"s3://{s3_bucket}/videos/a.mp4") as path:
        assert path.read_bytes() == friends_clip.read_bytes()
    assert not path.exists()
