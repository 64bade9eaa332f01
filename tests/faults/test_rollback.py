"""Someone with write access but no key rolls the index back after `forget --purge-appearances`.

Deleting the newest manifest leaves an older, authentic version that still
holds the forgotten faces. The client that saw the newer version refuses it
(its high-water mark, outside the store); a fresh client without one finds
the rewritten record files with `index verify` (the old manifest's hashes).
"""

from __future__ import annotations

import pytest

from tests.cli.runner import run
from tests.faults.conftest import assert_refused, cli_json

pytestmark = [pytest.mark.faults, pytest.mark.models]


def test_deleting_the_newest_manifest_after_forget_is_refused(built):
    faces = built.root / "faces"
    assert cli_json(["search", faces / "Ross.png"], built.env)["hits"]
    forgot = cli_json(["forget", "Ross", "--purge-appearances"], built.env)
    assert forgot["faces_deleted"] > 0
    assert not cli_json(["search", faces / "Ross.png"], built.env)["hits"]
    manifests = sorted((built.store / "index" / "manifests").glob("*.json"))
    newest, previous = int(manifests[-1].stem), int(manifests[-2].stem)
    manifests[-1].unlink()

    for args in (["search", faces / "Ross.png", "--json"], ["index", "build"], ["index", "list"]):
        result = run(args, built.env)
        assert_refused(result, f"index rolled back from v{newest} to v{previous}")
        assert "hits" not in result.stdout and "nothing changed" not in result.stdout

    # A fresh client (no high-water mark) cannot tell from the manifests alone, but verify finds the
    # record files rewritten by forget in the old version's hashes.
    fresh = built.env | {"FACEID_JOBS_STATE_DIR": str(built.root / "fresh-state")}
    verified = run(["index", "verify"], fresh)
    assert verified.returncode == 4 and "Traceback" not in verified.stderr
    assert "record file differs from the one indexed" in verified.stderr


def test_a_store_recreated_on_purpose_is_trusted_again_with_index_trust(tmp_path, friends_clip, weights_dir):
    """The owner wipes the store and processes again at the same path: the client's mark refuses
    the new version 1 (as it would a replaced one) and names `index trust`, which accepts it."""
    from tests.cli.runner import cut_clip
    from tests.faults.conftest import store_env

    clip = cut_clip(friends_clip, tmp_path / "cut.mp4", 2.0, start_frame=270)
    env = store_env(tmp_path / "owner", weights_dir)
    processed = run(["process", clip, "--sample-fps", "2"], env)
    assert processed.returncode == 0, processed.stderr
    store = tmp_path / "owner" / "store"
    assert store.is_dir()
    import shutil

    shutil.rmtree(store)
    again = run(["process", clip, "--sample-fps", "2"], env)
    assert again.returncode in (0, 4), again.stderr
    refused = run(["index", "list"], env)
    assert_refused(refused, "faceid-jobs index trust")
    trusted = run(["index", "trust", "--json"], env)
    assert trusted.returncode == 0, trusted.stderr
    assert cli_json(["index", "list"], env)["versions"]
