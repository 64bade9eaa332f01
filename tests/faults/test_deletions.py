"""Someone with write access but no key deletes objects: the answer is the clean one, or exit 4.

Deleting is the one thing they can always do. Before, a deleted record file,
catalog entry or gallery version made `find` answer with less (or "not
enrolled") and exit 0; now the catalog, the newest index manifest and this
client's high-water marks say what must be there.
"""

from __future__ import annotations

import json

import pytest

from tests.cli.runner import run
from tests.faults.conftest import assert_refused, cli_json

pytestmark = [pytest.mark.faults, pytest.mark.models]


def _ross_video(built) -> str:
    """Fingerprint of the cut Ross appears in."""
    entries = [json.loads(p.read_bytes())["body"] for p in (built.store / "videos").glob("*.json")]
    return next(e["fingerprint"] for e in entries if e["uri"].endswith("ross.mp4"))


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
