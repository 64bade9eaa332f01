"""The sources index (`faceid_jobs.storage.sources`): one mark per location, keyed by its listed identity,
authenticated by a MAC in its name."""

from __future__ import annotations

import json
import os

import pytest

from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.layout import SOURCES_PREFIX, parse_source_key, source_key
from faceid_jobs.storage.sources import SOURCES_FORMAT, list_marks, record_source
from faceid_jobs.video.source import SourceObject, local_source, uri_hash

FP_A, FP_B = "a" * 32, "b" * 32


def _file(location: str, mtime_ns: int = 1, inode: int = 7, size: int = 100) -> SourceObject:
    return SourceObject(uri=location, location=location, size=size, mtime_ns=mtime_ns, inode=inode, device=1)


@pytest.fixture()
def ws(make_workspace):
    return make_workspace()


def test_a_mark_is_found_by_location_and_identity_alone(ws):
    store = ws.store
    video = _file("/footage/a.mp4")
    key = record_source(store, ws.keys, video, FP_A, "sampled")
    marks = list_marks(store, ws.keys)
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


def test_a_location_keeps_one_mark_and_rerecording_writes_nothing(ws):
    store, keys = ws.store, ws.keys
    old = record_source(store, keys, _file("/f/a.mp4"), FP_A, "sampled")
    other = record_source(store, keys, _file("/f/b.mp4"), FP_A, "sampled")
    before = os.stat(store.root / old).st_mtime_ns
    assert record_source(store, keys, _file("/f/a.mp4"), FP_A, "sampled") == old
    assert os.stat(store.root / old).st_mtime_ns == before  # not rewritten
    new = record_source(store, keys, _file("/f/a.mp4", mtime_ns=5), FP_B, "sampled")
    assert sorted(store.list(SOURCES_PREFIX)) == sorted([new, other])  # the old identity's mark is gone
    assert set(list_marks(store, keys).values()) == {FP_A, FP_B}


def test_keys_that_are_not_marks_and_marks_without_a_mac_are_ignored(ws):
    store = ws.store
    store.put(SOURCES_PREFIX + "README", b"not a mark")
    store.put(SOURCES_PREFIX + "x/y.json", b"{}")
    video = _file("/f/a.mp4")
    older = f"{SOURCES_PREFIX}{uri_hash(video.location)}/{video.identity_hash('sampled')}/{FP_A}.json"
    store.put(older, b"{}")  # the format before marks carried a MAC: read once more, not trusted
    assert list_marks(store, ws.keys) == {}
    assert not store.exists("keys/sources.json")  # no mark, no key read or made


def test_a_mark_forged_without_the_key_is_refused(ws, make_workspace):
    """The attacker writes the store but holds no key: a mark naming an analysed fingerprint for
    a new video's listed identity (which would have it skipped unread) fails authentication."""
    store, keys = ws.store, ws.keys
    analysed = record_source(store, keys, _file("/f/old.mp4"), FP_A, "sampled")
    new = _file("/f/new.mp4")
    location, identity = uri_hash(new.location), new.identity_hash("sampled")
    for mac in ("0" * 32, parse_source_key(analysed)[3]):  # made up, or copied from a genuine mark
        forged = source_key(location, identity, FP_A, mac)
        store.put(forged, store.get(analysed))
        with pytest.raises(IntegrityError, match="fails authentication"):
            list_marks(store, keys)
        store.delete(forged)
    # A genuine mark under another store's key (the attacker's own store) is refused too.
    elsewhere = make_workspace()
    theirs = record_source(elsewhere.store, elsewhere.keys, new, FP_A, "sampled")
    store.put(theirs, elsewhere.store.get(theirs))
    with pytest.raises(IntegrityError, match="fails authentication"):
        list_marks(store, keys)


def test_a_local_source_is_its_stat(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"123")
    link = tmp_path / "link.mp4"
    link.symlink_to(path)
    st = path.stat()
    obj = local_source(link)
    assert obj.uri == str(link) and obj.location == str(path.resolve())  # where it is, not how it was named
    assert (obj.size, obj.mtime_ns, obj.inode, obj.device) == (3, st.st_mtime_ns, st.st_ino, st.st_dev)
