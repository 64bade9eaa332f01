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
