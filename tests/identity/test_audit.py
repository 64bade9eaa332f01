"""Audit records keep names only as keyed hashes; a key holder still reads them; forget leaves no name (no models)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np

from faceid_jobs.identity.audit import history, list_audit, name_hash, resolve, write_audit
from faceid_jobs.identity.forget import forget_identity
from faceid_jobs.identity.gallery import enroll, load_gallery, remove
from faceid_jobs.identity.labels import relabel
from faceid_jobs.index import merge_index
from faceid_jobs.storage.layout import audit_name_key_pointer
from tests.synthetic_store import EMBEDDER, add_video, faces_of, people, photo

NAME = "Zebulon Quixote-Ãvila"  # long and rare: its bytes cannot turn up in ciphertext by chance


def _store_files(ws) -> list[Path]:
    return [p for p in Path(ws.store.root).rglob("*") if p.is_file()]


def _holding(ws, name: str) -> list[str]:
    """Store files whose bytes contain `name` in any usual encoding or case."""
    needles = {name.encode(), name.lower().encode(), name.upper().encode(), name.encode("utf-16-le"),
               json.dumps(name).encode()[1:-1]}
    return [str(p.relative_to(ws.store.root)) for p in _store_files(ws) if any(n in p.read_bytes() for n in needles)]


def test_records_hold_hashes_that_the_key_holder_resolves(make_workspace):
    ws = make_workspace()
    p = people(["Ross", "Rachel"], seed=3)
    enroll(ws, {n: [(photo(n), p[n])] for n in p}, EMBEDDER, details={"via": "test"})
    remove(ws, ["Ross"])
    records = list_audit(ws.store)
    assert [r["format"] for r in records] == [2, 2]
    raw = b"".join(ws.store.get(r["key"]) for r in records)
    assert b"Ross" not in raw and b"Rachel" not in raw
    # One hashing key for the store (a wrapped data key, named by ref), shared by every record.
    ref = json.loads(ws.store.get(audit_name_key_pointer()))["ref"]
    assert {r["name_key"] for r in records} == {ref} and ws.store.exists(ws.keys.key_of(ref))
    secret = ws.keys.get(ref)
    assert secret not in b"".join(p.read_bytes() for p in _store_files(ws))
    assert records[0]["what"]["identities"] == sorted([name_hash(secret, "Rachel"), name_hash(secret, "Ross")])
    # Enrolled now (Rachel) → by name; removed (Ross) → only as a hash, unless asked for by name.
    enrolled, removed = resolve(ws.keys, records, load_gallery(ws).names)
    assert sorted(enrolled.identities) == ["#" + name_hash(secret, "Ross"), "Rachel"]
    assert removed.identities == ("#" + name_hash(secret, "Ross"),) and removed.action == "remove"
    assert [e.action for e in history(ws.keys, records, "Ross")] == ["enroll", "remove"]
    assert history(ws.keys, records, "Monica") == []
    assert enrolled.what == {"photos": 2, "gallery_version": 1, "replace": False, "via": "test"}
    # Another store's key gives other hashes: nothing to compare across stores.
    other = make_workspace()
    write_audit(other.store, other.keys, "enroll", {}, identities=["Ross"])
    [theirs] = list_audit(other.store)
    assert theirs["what"]["identities"] != [name_hash(secret, "Ross")]


def test_audit_files_are_owner_only(make_workspace):
    ws = make_workspace()
    key = write_audit(ws.store, ws.keys, "enroll", {}, identities=["Ross"])
    mode = stat.S_IMODE((Path(ws.store.root) / key).stat().st_mode)
    assert mode == 0o600


def test_format_1_records_are_still_read(make_workspace):
    ws = make_workspace()
    old = {"format": 1, "at": "2024-01-01T00:00:00+00:00", "who": {"user": "u", "host": "h"},
           "action": "forget", "what": {"identity": "Ross", "faces_deleted": 3}}
    ws.store.put("audit/20240101T000000.000000Z-aa.json", json.dumps(old).encode())
    ws.store.put("audit/20240101T000001.000000Z-bb.json", json.dumps(
        old | {"action": "enroll", "what": {"identities": ["Ross", "Rachel"]}}).encode())
    write_audit(ws.store, ws.keys, "enroll", {}, identities=["Ross"])
    records = list_audit(ws.store)
    [forgot, enrolled, new] = resolve(ws.keys, records, [])
    assert forgot.identities == ("Ross",) and forgot.what == {"faces_deleted": 3} and forgot.format == 1
    assert enrolled.identities == ("Ross", "Rachel")
    assert new.identities[0].startswith("#") and new.format == 2
    assert [e.key for e in history(ws.keys, records, "Ross")] == [r["key"] for r in records]


def test_forget_leaves_the_name_nowhere_in_the_store(make_workspace):
    rng = np.random.default_rng(2)
    p = people([NAME, "Rachel"], seed=11)
    ws = make_workspace()
    add_video(ws, "v1", [[(v, 1) for v in faces_of(p[NAME], 4, rng)] + [(v, 2) for v in faces_of(p["Rachel"], 3, rng)]])
    enroll(ws, {n: [(photo(n), p[n])] for n in p}, EMBEDDER)
    relabel(ws, EMBEDDER, 0.5)

    def merge():
        return merge_index(ws.store, ws.keys, EMBEDDER, cipher=ws.cipher)

    merge()
    forget_identity(ws, NAME, embedder_id=EMBEDDER, threshold=0.5, purge_appearances=True, merge=merge,
                    gc_keep=1, relabel_after=True)
    assert _holding(ws, NAME) == []
    assert _holding(ws, "Rachel.jpg") == []  # the check itself finds nothing in sealed objects either
    # The key holder who knows the name still finds what was done about it.
    assert [e.action for e in history(ws.keys, list_audit(ws.store), NAME)] == ["enroll", "forget"]
