"""Someone with write access but no key deletes objects: the answer is the clean one, or exit 4.

Deleting is the one thing they can always do. Before, a deleted record file,
catalog entry or gallery version made `find` answer with less (or "not
enrolled") and exit 0; now the catalog, the newest index manifest and this
client's high-water marks say what must be there. A deleted stale mark made
`index build` keep indexing a record file's old faces; an explicit build now
compares every indexed record file with the hash its version recorded.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.cli.runner import run
from tests.faults.conftest import assert_refused, cli_json

pytestmark = [pytest.mark.faults, pytest.mark.models]


def _ross_video(built) -> str:
    """Fingerprint of the cut Ross appears in."""
    entries = [json.loads(p.read_bytes())["body"] for p in (built.store / "videos").glob("*.json")]
    return next(e["fingerprint"] for e in entries if e["uri"].endswith("ross.mp4"))


def _workspace(built):
    from faceid_jobs.config import Settings
    from faceid_jobs.workspace import open_workspace

    return open_workspace(Settings(store=str(built.store), key_file=str(built.root / "key.json"),
                                   state_dir=str(built.root / "state")))


@pytest.mark.parametrize("what", ["record file", "catalog entry", "gallery version"])
def test_find_refuses_when_an_object_it_needs_is_deleted(built, what):
    assert cli_json(["find", "Ross"], built.env)["appearances"]  # this client has seen the store
    fingerprint = _ross_video(built)
    if what == "record file":
        victim = sorted((built.store / "records").rglob(f"{fingerprint}/chunk-*.parquet"))[0]
        named = str(victim.relative_to(built.store))
    elif what == "catalog entry":
        victim = built.store / "videos" / f"{fingerprint}.json"
        named = f"videos/{fingerprint}.json"
    else:
        [victim] = (built.store / "gallery" / "versions").glob("*.bin")
        named = "gallery rolled back from v1 to v0"
    victim.unlink()
    result = run(["find", "Ross", "--json"], built.env)
    assert_refused(result, named)
    assert "appearances" not in result.stdout
    if what == "gallery version":  # the owner who deleted it on purpose says so once
        trusted = cli_json(["index", "trust"], built.env)
        assert trusted["trusted_gallery_version"] is None
        assert run(["find", "Ross"], built.env).returncode == 2  # not enrolled


def test_a_deleted_label_file_changes_no_answer(built):
    before = cli_json(["find", "Ross"], built.env)
    labels = sorted((built.store / "labels").rglob(f"{_ross_video(built)}/chunk-*.parquet"),
                    key=lambda p: p.stat().st_size)
    labels[-1].unlink()  # the one with most of Ross's faces
    after = cli_json(["find", "Ross"], built.env)
    assert after["appearances"] == before["appearances"]
    assert after["labels"]["unlabelled_files"] == 1  # labelled on the spot from its record file


def test_index_build_reindexes_a_rewrite_whose_stale_mark_was_deleted(built):
    """The owner's `forget --purge-appearances` rewrote a record file; its stale mark was deleted before
    any merge read it. `index verify` names the file, and `index build` indexes its new content."""
    from faceid_jobs.index.manifest import load_manifest
    from faceid_jobs.records import parquet_to_table, table_to_parquet

    ws = _workspace(built)
    manifest = load_manifest(ws.store, ws.keys)
    source = max((s for shard in manifest.shards for s in shard.sources),
                 key=lambda k: len(ws.store.get(k)))
    table = parquet_to_table(ws.store.get(source), source, cipher=ws.cipher)
    assert table.num_rows > 1
    ws.store.put(source, table_to_parquet(table.slice(0, 1), ws.cipher, key=source))  # no mark

    verified = run(["index", "verify"], built.env)
    assert verified.returncode == 4 and source in verified.stderr and "differs" in verified.stderr
    rebuilt = cli_json(["index", "build"], built.env)
    assert rebuilt["published"] and rebuilt["version"] == manifest.version + 1
    # Indexed again from its new content: the new version records the new file's hash.
    new = load_manifest(ws.store, ws.keys)
    assert new.source_hashes[source] == hashlib.sha256(ws.store.get(source)).hexdigest()
    assert run(["index", "verify"], built.env).returncode == 0


def test_index_verify_names_a_gap_in_the_chain_a_damaged_label_and_a_missing_record(built):
    from faceid_jobs.index.manifest import republish

    ws = _workspace(built)
    first = republish(ws.store, ws.keys, "test")
    republish(ws.store, ws.keys, "test")
    gap = built.store / "index" / "manifests" / f"{first.version:020d}.json"
    gap.unlink()
    label = sorted((built.store / "labels").rglob("chunk-*.parquet"))[0]
    data = bytearray(label.read_bytes())
    data[len(data) // 2] ^= 0x10
    label.write_bytes(bytes(data))
    record = sorted((built.store / "records").rglob("chunk-*.parquet"))[-1]
    record.unlink()

    result = run(["index", "verify"], built.env)
    assert result.returncode == 4 and "Traceback" not in result.stderr
    for name in (f"index/manifests/{first.version:020d}.json: missing between", str(label.relative_to(built.store)),
                 f"{record.relative_to(built.store)}: missing, but its video's catalog entry lists the chunk"):
        assert name in result.stderr, (name, result.stderr)

