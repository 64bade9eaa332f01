"""Someone who can write the store but holds no key plants names that lead outside it.

The attacker writes plaintext catalog entries (videos/<fp>.json) and symlinks into
the store folder; every command that walks the catalog or the index must refuse
(exit 4, one line, no traceback) without reading or listing anything outside the
store root. An audit hook in the CLI process (sitecustomize on PYTHONPATH) records
every open/scandir/listdir under the bait folder, so "nothing was touched" is measured,
not assumed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from faceid_jobs.storage import LocalStore
from tests.cli.runner import run

pytestmark = pytest.mark.faults

FP = "s1-" + "ab" * 16  # a fingerprint the attacker makes up
GOOD_ANALYSIS = "0123456789abcdef"

_HOOK = '''
import os, sys
_watch = os.environ.get("FACEID_TEST_WATCH")
_log = os.environ.get("FACEID_TEST_WATCH_LOG")
if _watch and _log:
    _watch = os.path.realpath(_watch)
    def _hook(event, args):
        if event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
            try:
                path = os.path.realpath(os.fsdecode(args[0]))
            except (TypeError, ValueError):
                return
            if path == _watch or path.startswith(_watch + os.sep):
                with open(_log, "a") as f:
                    f.write(f"{event} {path}\\n")
    sys.addaudithook(_hook)
'''


def entry(analysis_id: str, fingerprint: str = FP) -> bytes:
    return json.dumps({
        "version": 1, "fingerprint": fingerprint, "uri": "/videos/x.mp4", "fps": 25.0, "frame_count": 50,
        "width": 64, "height": 48, "analysis_id": analysis_id, "embedder_id": "emb", "chunks": 1,
        "failed_chunks": [], "other_uris": [], "updated_at": "",
    }).encode()


@pytest.fixture()
def setup(tmp_path, make_workspace, weights_dir):
    """A store with a key (as its owner made it), a bait folder beside it, and the CLI's environment."""
    root = tmp_path / "store"
    root.mkdir()
    make_workspace(store=LocalStore(root), key_file=tmp_path / "key.json")
    bait = tmp_path / "bait"
    (bait / FP).mkdir(parents=True)
    (bait / FP / "chunk-000000.parquet").write_bytes(b"PAR1 bait, outside the store")
    (bait / "entry.json").write_bytes(entry(GOOD_ANALYSIS))
    (bait / "manifests").mkdir()
    (bait / "manifests" / f"{1:020d}.json").write_text("{}")
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(_HOOK)
    log = tmp_path / "touched.log"
    env = {"FACEID_JOBS_STORE": str(root), "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json"),
           "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "PYTHONPATH": str(hook_dir), "FACEID_TEST_WATCH": str(bait), "FACEID_TEST_WATCH_LOG": str(log)}
    return root, bait, env, log


def plant_entry(root: Path, raw: bytes, fingerprint: str = FP) -> None:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "videos" / f"{fingerprint}.json").write_bytes(raw)


def assert_refused(result, log: Path, *needles: str) -> None:
    assert result.returncode in (2, 4), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    touched = log.read_text() if log.exists() else ""
    assert touched == "", f"read or listed outside the store:\n{touched}"


def variants(bait: Path) -> dict[str, str]:
    return {
        "dotdot-etc": "../../../../etc",
        "dotdot-bait": "../../../bait",  # records/v1/../../../bait is the bait folder
        "absolute": str(bait),
        "nul": "abc\x00def",
        "backslash": "..\\..\\..\\bait",
        "nested": f"{GOOD_ANALYSIS}/../../../../bait",
    }


@pytest.mark.parametrize("name", ["dotdot-etc", "dotdot-bait", "absolute", "nul", "backslash", "nested"])
def test_index_build_refuses_a_catalog_entry_that_leads_outside(setup, name):
    root, bait, env, log = setup
    plant_entry(root, entry(variants(bait)[name]))
    result = run(["index", "build"], env)
    # Refused as unauthenticated before its names are used (they are checked again after the MAC).
    assert_refused(result, log, f"videos/{FP}.json", "damaged catalog entry")
    assert result.returncode == 4


def test_index_build_refuses_a_fingerprint_that_leads_outside(setup):
    root, _, env, log = setup
    plant_entry(root, entry(GOOD_ANALYSIS, fingerprint="../../../bait"))
    assert_refused(run(["index", "build"], env), log, f"videos/{FP}.json", "damaged catalog entry")


def test_index_build_refuses_a_symlinked_record_folder(setup, weights_dir):
    from faceid_jobs.config import Settings
    from faceid_jobs.models import resolve_model_path
    from faceid_jobs.models.runtime import ModelFile

    root, bait, env, log = setup
    # An entry as a real run writes it (the real embedder), so the merge lists its records.
    embedder = ModelFile.from_path(resolve_model_path(Settings(weights_dir=str(weights_dir)), "embedder")).id
    plant_entry(root, entry(GOOD_ANALYSIS).replace(b'"emb"', json.dumps(embedder).encode()))
    folder = root / "records" / "v1" / GOOD_ANALYSIS
    folder.mkdir(parents=True)
    (folder / FP).symlink_to(bait / FP)
    # The planted entry is refused as unauthenticated, so the symlinked folder is never listed.
    assert_refused(run(["index", "build"], env), log, f"videos/{FP}.json")


def test_index_build_refuses_a_symlinked_catalog_entry(setup):
    root, bait, env, log = setup
    (root / "videos").mkdir(parents=True)
    (root / "videos" / f"{FP}.json").symlink_to(bait / "entry.json")
    assert_refused(run(["index", "build"], env), log, f"{FP}.json", "outside the store")


@pytest.mark.models
def test_process_refuses_a_catalog_entry_that_leads_outside(setup, tmp_path):
    root, _, env, log = setup
    plant_entry(root, entry("../../../bait"))
    empty = tmp_path / "no-videos"
    empty.mkdir()
    result = run(["process", empty], env)
    # process reports the refused merge as one failure among the run's failures (exit 1).
    assert result.returncode != 0 and "Traceback" not in result.stderr
    refused = [line for line in result.stderr.splitlines() if "damaged catalog entry" in line]
    assert len(refused) == 1 and f"videos/{FP}.json" in refused[0]
    assert not log.exists(), log.read_text()


@pytest.mark.models
def test_search_refuses_a_symlinked_manifest_folder(setup, portraits):
    root, bait, env, log = setup
    (root / "index").mkdir(parents=True)
    (root / "index" / "manifests").symlink_to(bait / "manifests")
    result = run(["search", portraits["Ross"]], env)
    assert_refused(result, log, "index/manifests/", "outside the store")
    assert result.returncode == 4


@pytest.mark.models
def test_search_refuses_a_symlinked_manifest(setup, portraits):
    root, bait, env, log = setup
    (root / "index" / "manifests").mkdir(parents=True)
    (root / "index" / "manifests" / f"{7:020d}.json").symlink_to(bait / "manifests" / f"{1:020d}.json")
    result = run(["search", portraits["Ross"]], env)
    assert_refused(result, log, "outside the store")
    assert result.returncode == 4


def test_the_audit_hook_sees_reads_outside(setup):
    """The watch itself works: a command told to read the bait folder is recorded."""
    _, bait, env, log = setup
    run(["index", "build", "--store", bait], env)
    assert str(os.path.realpath(bait)) in log.read_text()
