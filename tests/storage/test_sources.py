"""The sources index (`faceid_jobs.storage.sources`): one mark per location, keyed by its listed identity."""

from __future__ import annotations

import json
import os

from faceid_jobs.storage import LocalStore
from faceid_jobs.storage.layout import SOURCES_PREFIX
from faceid_jobs.storage.sources import SOURCES_FORMAT, list_marks, record_source
from faceid_jobs.video.source import SourceObject, local_source, uri_hash

FP_A, FP_B = "a" * 32, "b" * 32


def _file(location: str, mtime_ns: int = 1, inode: int = 7, size: int = 100) -> SourceObject:
    return SourceObject(uri=location, location=location, size=size, mtime_ns=mtime_ns, inode=inode, device=1)


def test_a_mark_is_found_by_location_and_identity_alone(tmp_path):
    store = LocalStore(tmp_path / "store")
    video = _file("/footage/a.mp4")
    key = record_source(store, video, FP_A, "sampled")
    marks = list_marks(store)
    assert marks == {(uri_hash(video.location), video.identity_hash("sampled")): FP_A}
    body = json.loads(store.get(key))  # for people and audits; a re-run needs only the key
    assert body["format"] == SOURCES_FORMAT and body["fingerprint"] == FP_A
    assert body["location"] == "/footage/a.mp4" and body["identity"] == video.identity()
    # The store's names say nothing of the path.
    assert "footage" not in key and key.startswith(SOURCES_PREFIX)


def test_each_change_of_identity_gives_a_new_identity_hash():
    base = _file("/f/a.mp4")
    changed = [_file("/f/a.mp4", mtime_ns=2), _file("/f/a.mp4", inode=8), _file("/f/a.mp4", size=101)]
    hashes = {base.identity_hash("sampled"), *(c.identity_hash("sampled") for c in changed),
              base.identity_hash("full")}  # a mark of one fingerprint mode never answers for another
    assert len(hashes) == 5
    s3 = SourceObject(uri="s3://b/a.mp4", location="s3://b/a.mp4", size=100, etag='"e1"', modified="2026-01-01")
    moved = SourceObject(uri="s3://b/a.mp4", location="s3://b/a.mp4", size=100, etag='"e2"', modified="2026-01-01")
    assert s3.identity_hash("sampled") != moved.identity_hash("sampled")


def test_a_location_keeps_one_mark_and_rerecording_writes_nothing(tmp_path):
    store = LocalStore(tmp_path / "store")
    old = record_source(store, _file("/f/a.mp4"), FP_A, "sampled")
    other = record_source(store, _file("/f/b.mp4"), FP_A, "sampled")
    before = os.stat(store.root / old).st_mtime_ns
    assert record_source(store, _file("/f/a.mp4"), FP_A, "sampled") == old
    assert os.stat(store.root / old).st_mtime_ns == before  # not rewritten
    new = record_source(store, _file("/f/a.mp4", mtime_ns=5), FP_B, "sampled")
    assert sorted(store.list(SOURCES_PREFIX)) == sorted([new, other])  # the old identity's mark is gone
    assert set(list_marks(store).values()) == {FP_A, FP_B}


def test_keys_that_are_not_marks_are_ignored(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put(SOURCES_PREFIX + "README", b"not a mark")
    store.put(SOURCES_PREFIX + "x/y.json", b"{}")
    assert list_marks(store) == {}


def test_a_local_source_is_its_stat(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"123")
    link = tmp_path / "link.mp4"
    link.symlink_to(path)
    st = path.stat()
    obj = local_source(link)
    assert obj.uri == str(link) and obj.location == str(path.resolve())  # where it is, not how it was named
    assert (obj.size, obj.mtime_ns, obj.inode, obj.device) == (3, st.st_mtime_ns, st.st_ino, st.st_dev)
