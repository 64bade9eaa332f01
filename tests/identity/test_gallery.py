"""The encrypted, versioned gallery: enroll, append, replace, remove, integrity, concurrency (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.errors import ConfigError, IntegrityError
from faceid_jobs.identity.audit import AUDIT_PREFIX, list_audit
from faceid_jobs.identity.gallery import (
    ENTRIES_PREFIX,
    VERSIONS_PREFIX,
    UnknownIdentityError,
    check_name,
    enroll,
    identity_rows,
    list_gallery_versions,
    load_gallery,
    load_gallery_version,
    remove,
    trust_newest_gallery,
)
from tests.synthetic_store import EMBEDDER, people, photo


def _enroll(ws, *names, seed=0, **kw):
    vecs = people(names, seed)
    return enroll(ws, {n: [(photo(n), vecs[n])] for n in names}, EMBEDDER, **kw), vecs


def _store_bytes(ws) -> bytes:
    # Audit records (format 1) name identities in plaintext: the gallery's own objects are checked here.
    return b"".join(ws.store.get(k) for k in ws.store.list("") if not k.startswith(AUDIT_PREFIX))


def test_enroll_and_load_round_trip_with_nothing_readable_in_the_store(make_workspace):
    ws = make_workspace()
    assert load_gallery(ws).version == 0 and load_gallery_version(ws) is None
    change, vecs = _enroll(ws, "Ross", "Rachel")
    assert change.version == 1 and change.names == ("Rachel", "Ross") and change.embeddings == 2
    gallery = load_gallery(ws)
    assert gallery.version == 1 and gallery.names == ["Rachel", "Ross"]
    np.testing.assert_array_equal(gallery.get("Ross").embeddings, vecs["Ross"][None])
    assert gallery.get("Ross").photos[0].photo == "Ross.jpg"
    assert [r["name"] for r in identity_rows(load_gallery_version(ws))] == ["Rachel", "Ross"]
    # Names, photo names and embeddings are all sealed.
    blob = _store_bytes(ws)
    assert b"Ross" not in blob and b"Rachel" not in blob and vecs["Ross"].tobytes()[:16] not in blob
    assert len(list(ws.store.list(ENTRIES_PREFIX))) == 2


def test_more_photos_are_added_and_replace_replaces(make_workspace):
    ws = make_workspace()
    _enroll(ws, "Ross", seed=1)
    first_entry = load_gallery_version(ws).identities["Ross"].key
    _enroll(ws, "Ross", seed=2)
    ross = load_gallery(ws).get("Ross")
    assert len(ross.embeddings) == 2 and load_gallery(ws).version == 2
    assert not ws.store.exists(first_entry)  # superseded entries are deleted with their key
    _enroll(ws, "Ross", seed=3, replace_existing=True)
    ross = load_gallery(ws).get("Ross")
    assert len(ross.embeddings) == 1
    np.testing.assert_array_equal(ross.embeddings[0], people(["Ross"], 3)["Ross"])
    assert len(list(ws.store.list(ENTRIES_PREFIX))) == 1


def test_remove_deletes_embeddings_keys_and_history(make_workspace):
    ws = make_workspace()
    _enroll(ws, "Ross", "Rachel")
    entry = load_gallery_version(ws).identities["Ross"]
    keys_before = set(ws.store.list("keys/data/"))
    change = remove(ws, ["Ross"])
    assert change.version == 2 and load_gallery(ws).names == ["Rachel"]
    assert not ws.store.exists(entry.key)
    assert list_gallery_versions(ws.store) == [2]  # the older version named Ross
    assert len(set(ws.store.list("keys/data/")) - keys_before) == 1  # only the new version's key is new
    with pytest.raises(UnknownIdentityError, match="Ross: not enrolled"):
        load_gallery(ws).get("Ross")
    with pytest.raises(UnknownIdentityError):
        remove(ws, ["Ross"])
    with pytest.raises(UnknownIdentityError):
        load_gallery(ws, names=["Ross"])


def test_other_embedders_are_not_matched_or_extended(make_workspace):
    ws = make_workspace()
    _enroll(ws, "Ross")
    assert load_gallery(ws).matrix("other-embedder", 16).names == ()
    with pytest.raises(ConfigError, match="--replace"):
        enroll(ws, {"Ross": [(photo("Ross"), np.ones(16, np.float32) / 4)]}, "other-embedder")
    enroll(ws, {"Ross": [(photo("Ross"), np.ones(16, np.float32) / 4)]}, "other-embedder", replace_existing=True)
    assert load_gallery(ws).matrix("other-embedder").names == ("Ross",)


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 129])
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigError):
        check_name(name)


def test_replayed_version_and_swapped_entry_are_refused(make_workspace):
    ws = make_workspace()
    _enroll(ws, "Ross")
    _enroll(ws, "Rachel")
    v1, v2 = (f"{VERSIONS_PREFIX}{v:020d}.bin" for v in (1, 2))
    ws.store.put(f"{VERSIONS_PREFIX}{3:020d}.bin", ws.store.get(v1))  # an old version replayed as the newest
    with pytest.raises(IntegrityError):
        load_gallery(ws)
    ws.store.delete(f"{VERSIONS_PREFIX}{3:020d}.bin")
    refs = load_gallery_version(ws).identities
    ws.store.put(refs["Ross"].key, ws.store.get(refs["Rachel"].key))  # one identity's entry under another's id
    with pytest.raises(IntegrityError):
        load_gallery(ws)
    blob = bytearray(ws.store.get(v2))
    blob[-5] ^= 1
    ws.store.put(v2, bytes(blob))
    with pytest.raises(IntegrityError):
        load_gallery_version(ws)


def test_a_lost_commit_race_applies_the_change_again(make_workspace, monkeypatch):
    ws = make_workspace()
    _enroll(ws, "Ross")
    real = ws.store.put_if_absent
    raced = []

    def put_if_absent(key, data):
        if key.startswith(VERSIONS_PREFIX) and not raced:
            raced.append(key)
            _enroll(ws, "Monica", seed=5)  # another writer publishes this very version first
        return real(key, data)

    monkeypatch.setattr(ws.store, "put_if_absent", put_if_absent)
    change, _ = _enroll(ws, "Rachel", seed=6)
    assert change.version == 3
    assert load_gallery(ws).names == ["Monica", "Rachel", "Ross"]
    assert len(list(ws.store.list(ENTRIES_PREFIX))) == 3  # nothing orphaned


def test_enroll_and_remove_write_their_audit_record_and_call_on_change(make_workspace):
    ws = make_workspace()
    seen = []
    change, _ = _enroll(ws, "Ross", "Rachel", details={"via": "test"}, on_change=seen.append)
    removed = remove(ws, ["Ross"], on_change=seen.append)
    assert seen == [change, removed]
    assert [(c.action, c.version, c.names) for c in seen] == [("enroll", 1, ("Rachel", "Ross")),
                                                              ("remove", 2, ("Ross",))]
    records = list_audit(ws.store)
    assert [r["action"] for r in records] == ["enroll", "remove"]
    assert [r["key"] for r in records] == [change.audit_key, removed.audit_key]
    assert records[0]["what"]["gallery_version"] == 1 and records[0]["what"]["via"] == "test"
    assert records[0]["what"]["photos"] == 2 and records[1]["what"]["gallery_version"] == 2


def test_a_failing_on_change_does_not_undo_the_committed_change(make_workspace, caplog):
    ws = make_workspace()

    def broken(change):
        raise RuntimeError("event bus down")

    change, _ = _enroll(ws, "Ross", on_change=broken)
    assert change.version == 1 and load_gallery(ws).names == ["Ross"]
    assert "event bus down" in caplog.text
    assert [r["action"] for r in list_audit(ws.store)] == ["enroll"]


def test_deleting_the_newest_versions_is_a_rollback_until_trusted(make_workspace):
    ws = make_workspace()
    _enroll(ws, "Ross")
    _enroll(ws, "Rachel")
    assert load_gallery_version(ws).version == 2  # this client has seen version 2
    ws.store.delete(f"{VERSIONS_PREFIX}{2:020d}.bin")  # Rachel's enrollment undone by someone without the key
    for read in (load_gallery_version, load_gallery):
        with pytest.raises(IntegrityError, match="gallery rolled back from v2 to v1"):
            read(ws)
    assert trust_newest_gallery(ws) == 1  # the owner says it was on purpose
    assert load_gallery(ws).names == ["Ross"]
