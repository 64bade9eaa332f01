"""Random damage to every kind of object of a real store: the answer is the clean one, or exit 4.

A seeded RNG picks an object of the CLI-built store and a mutation (flip bytes,
truncate, delete, copy another object of the same folder over it, move it to a
new name beside it), applies it with os only, runs `search` and `find` in
process through the library, then restores the store. Each answer must be
exactly the clean store's, or an IntegrityError; a deletion may only lose
answers (denial of service: a subset of the clean answer, or "missing"),
never add one. A few mutations also run the CLI as a subprocess.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import cv2
import pytest

from faceid_jobs.errors import FaceIdError, IntegrityError
from tests.cli.runner import run

pytestmark = [pytest.mark.faults, pytest.mark.models, pytest.mark.slow]

MUTATIONS = 500
SEED = 15


def _answers(settings, query):
    from faceid_jobs.identity.labels import find_identity
    from faceid_jobs.index.sharded import open_index
    from faceid_jobs.search.query import search_index
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(settings)  # fresh: no data key cached from before the mutation
    hits = [h.to_json() for h in search_index(query, open_index(ws.store, ws.keys)).hits]
    found = [a.to_json() for a in find_identity(ws, "Ross").appearances]
    return hits, found


def _mutate(rng: random.Random, store: Path) -> tuple[str, list[Path]]:
    files = sorted(p for p in store.rglob("*") if p.is_file())
    target = rng.choice(files)
    kind = rng.choice(["flip", "truncate", "delete", "copy", "move"])
    data = target.read_bytes()
    if kind == "flip" and data:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(buf))
    elif kind == "truncate":
        target.write_bytes(data[: rng.randrange(len(data) + 1)] if data else b"")
    elif kind == "delete":
        target.unlink()
    elif kind == "copy":
        others = [p for p in target.parent.iterdir() if p.is_file() and p != target]
        if not others:
            return "skip", []
        shutil.copy(rng.choice(others), target)
    else:  # move beside: same folder, a name of its kind (next version, chunk or id)
        new = target.with_name(target.name.replace("0", "9", 1) if "0" in target.name else "x" + target.name)
        if new.exists():
            return "skip", []
        target.rename(new)
        return f"move {target.relative_to(store)}", [target, new]
    return f"{kind} {target.relative_to(store)}", [target]


def _subset(part: list[dict], whole: list[dict]) -> bool:
    """Every answer of `part` is one of `whole`, or a shorter span of one (evidence lost, none added)."""
    def inside(item: dict, of: dict) -> bool:
        if item == of:
            return True
        return (item["video"] == of["video"] and "start_s" in item
                and of["start_s"] <= item["start_s"] <= item["end_s"] <= of["end_s"])
    return all(any(inside(item, w) for w in whole) for item in part)


def test_random_mutations_never_change_an_answer(built, models, cpu_settings):
    from faceid_jobs.search.query import make_query

    settings = cpu_settings.replace(store=str(built.store), key_file=str(built.root / "key.json"),
                                    state_dir=str(built.root / "state"))
    photo = built.root / "faces" / "Ross.png"
    query = make_query(cv2.imread(str(photo)), str(photo), models)
    clean = _answers(settings, query)
    assert clean[0] and clean[1]
    pristine = built.root / "pristine"
    shutil.copytree(built.store, pristine)
    rng = random.Random(SEED)
    outcomes = {"same": 0, "refused": 0, "lost (deleted)": 0}
    tried = 0
    for i in range(MUTATIONS):
        what, _ = _mutate(rng, built.store)
        if what == "skip":
            continue
        tried += 1
        try:
            got = _answers(settings, query)
        except IntegrityError:
            outcomes["refused"] += 1
        except FaceIdError as exc:  # e.g. no index / not enrolled: only when something was deleted
            assert what.startswith(("delete", "move")), (what, exc)
            outcomes["lost (deleted)"] += 1
        else:
            if got == clean:
                outcomes["same"] += 1
            else:
                assert what.startswith(("delete", "move")), (what, got)
                assert _subset(got[0], clean[0]) and _subset(got[1], clean[1]), (what, got)
                outcomes["lost (deleted)"] += 1
        if i % 50 == 0:  # as a user runs it: exit 0 with the clean hits, or exit 4, never a traceback
            result = run(["search", photo, "--json"], built.env)
            assert "Traceback" not in result.stderr, (what, result.stderr)
            assert result.returncode in (0, 2, 4), (what, result.returncode, result.stderr)
            if result.returncode == 0:
                assert _subset(json.loads(result.stdout)["hits"], clean[0]), what
        shutil.rmtree(built.store)
        shutil.copytree(pristine, built.store)
    print(f"\n{tried} mutations: {outcomes}")
    assert tried >= MUTATIONS * 0.8 and outcomes["refused"] > 0
