"""Random damage to every kind of object of a real store: the answer is the clean one, or exit 4.

A seeded RNG picks an object of the CLI-built store and a mutation (flip bytes,
truncate, delete, copy another object of the same folder over it, move it to a
new name beside it), applies it with os only, runs `search` and `find` in
process through the library, then restores the store. Each answer must be
exactly the clean store's, or an IntegrityError (exit 4): a deletion too,
since the catalog, the index and this client's high-water marks say what must
be there. Every 50th mutation also runs `search` and `find` as a user does,
the CLI in a subprocess. Objects are drawn in an order that does not depend on
their random names (by kind, then creation order and size), so the seed
reproduces the draws on a store built again.
"""

from __future__ import annotations

import json
import random
import re
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


_RANDOM_PART = re.compile(r"[0-9a-f]{16,}|\d{8}T\d{6}Z?")


def _objects(store: Path) -> list[Path]:
    """Every file of the store, by kind (its path with random names masked), then creation order and size."""
    def order(p: Path) -> tuple[str, int, int]:
        stat = p.stat()
        return _RANDOM_PART.sub("*", str(p.relative_to(store))), stat.st_mtime_ns, stat.st_size
    return sorted((p for p in store.rglob("*") if p.is_file()), key=order)


def _mutate(rng: random.Random, store: Path) -> tuple[str, list[Path]]:
    files = _objects(store)
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
        others = [p for p in files if p.parent == target.parent and p != target]
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


def _cli_answers(built, photo: Path, clean, what: str) -> None:
    """As a user runs it: exit 0 with exactly the clean answer, or exit 4 with one line; never a traceback."""
    for args, part, field in ((["search", photo, "--json"], 0, "hits"), (["find", "Ross", "--json"], 1, "appearances")):
        result = run(args, built.env)
        assert "Traceback" not in result.stderr, (what, args[0], result.stderr)
        assert result.returncode in (0, 4), (what, args[0], result.returncode, result.stderr)
        if result.returncode == 0:
            assert json.loads(result.stdout)[field] == clean[part], (what, args[0])


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
    outcomes = {"same": 0, "refused": 0}
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
        except FaceIdError as exc:  # anything else (e.g. "not enrolled") is a different answer
            raise AssertionError((what, exc)) from None
        else:
            assert got == clean, (what, got)
            outcomes["same"] += 1
        if i % 50 == 0:
            _cli_answers(built, photo, clean, what)
        shutil.rmtree(built.store)
        shutil.copytree(pristine, built.store)
    print(f"\n{tried} mutations: {outcomes}")
    assert tried >= MUTATIONS * 0.8 and outcomes["refused"] > 0 and outcomes["same"] > 0
