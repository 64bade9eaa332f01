"""`people name` and `forget --purge-appearances` end to end on real footage, run as a user would.

A 6-second cut of the Friends clip from frame 270 (shot 3: Phoebe and Ross, then the start of shot 4) is
processed at 2 frames/s; the people found are matched to Phoebe and Ross through `search PORTRAIT`. The
tests run in file order and share one store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceid_jobs.config import Settings
from faceid_jobs.identity.people import load_state
from faceid_jobs.storage import LocalStore
from faceid_jobs.storage.layout import people_version_key
from faceid_jobs.workspace import open_workspace
from tests.cli.runner import cut_clip, run

pytestmark = pytest.mark.models

START, SECONDS, FPS = 270, 6.0, 23.976
SHOT3_END_S = (400 - START + 1) / FPS  # the cut's first 5.45 s are shot 3


def _json(args, env):
    res = run(args, env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _person_of(env, people, portrait: Path) -> dict:
    """The listed person seen where `search PORTRAIT` finds its best face (same time, nearest box)."""
    top = _json(["search", portrait, "--json"], env)["hits"][0]

    def centre(b):
        return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)

    def gap(p):
        return min(((centre(a["bbox"])[0] - centre(top["bbox"])[0]) ** 2
                    + (centre(a["bbox"])[1] - centre(top["bbox"])[1]) ** 2)
                   for a in p["appearances"] if a["start_s"] <= top["timestamp_s"] <= a["end_s"])

    seen = [p for p in people if any(a["start_s"] <= top["timestamp_s"] <= a["end_s"] for a in p["appearances"])]
    assert seen, portrait.stem
    return min(seen, key=gap)


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir, friends_clip, portraits):
    root = tmp_path_factory.mktemp("people-name")
    cut = cut_clip(friends_clip, root / "cut.mp4", SECONDS, START)
    env = {"FACEID_JOBS_STORE": str(root / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
           "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(root / "key.json")}
    _json(["process", cut, "--sample-fps", "2", "--json"], env)
    people = _json(["people", "--json"], env)["people"]
    ross, phoebe = _person_of(env, people, portraits["Ross"]), _person_of(env, people, portraits["Phoebe"])
    assert ross["id"] != phoebe["id"]
    return {"env": env, "root": root, "ross": ross["id"], "phoebe": phoebe["id"], "portraits": portraits}


def _audit(env) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(env["FACEID_JOBS_STORE"], "audit").glob("*.json"))]


def test_name_refuses_too_few_faces_then_enrolls_and_find_follows(env):
    e, ross = env["env"], env["ross"]
    # A 6-second cut gives Ross one or two tracks: fewer than people_name_min_faces (3) faces to enrol.
    refused = run(["people", "name", ross, "Ross"], e)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert f"{ross}: only" in refused.stderr and "3 needed" in refused.stderr
    assert _json(["identities", "list", "--json"], e)["identities"] == []  # nothing enrolled
    one = {**e, "FACEID_JOBS_PEOPLE_NAME_MIN_FACES": "1"}
    res = run(["people", "name", ross.lower(), "Ross", "--json"], one)
    assert res.returncode == 0, res.stderr
    named = json.loads(res.stdout)
    assert named["person"] == ross and named["name"] == "Ross" and named["gallery_version"] == 1
    assert named["faces_enrolled"] >= 1 and named["event_emitted"] is False and named["refused"] == []
    listed = _json(["identities", "list", "--json"], e)["identities"]
    assert [(i["name"], i["embeddings"]) for i in listed] == [("Ross", named["faces_enrolled"])]
    assert _json(["people", "show", ross, "--json"], e)["name"] == "Ross"
    assert next(p for p in _json(["people", "--json"], e)["people"] if p["id"] == ross)["name"] == "Ross"
    record = [a for a in _audit(e) if a["action"] == "enroll"][-1]
    assert record["what"]["from_person"] == ross and record["what"]["via"] == "people name"
    assert b"Ross" not in json.dumps(record).encode() and record["what"]["liveness_checked"] is True
    named_in = _json(["audit", "--name", "Ross", "--json"], e)["records"]
    assert [(a["action"], a["identities"]) for a in named_in] == [("enroll", ["Ross"])]
    assert "embedding" not in json.dumps(record)
    assert run(["relabel"], e).returncode == 0
    found = _json(["find", "Ross", "--json"], e)
    assert found["appearances"], found
    for a in found["appearances"]:  # Ross is in shot 3 only
        assert a["video"].endswith("cut.mp4") and a["end_s"] <= SHOT3_END_S, a


def test_name_conflicts_exit_2_unless_merge_into(env):
    e, ross, phoebe = env["env"], env["ross"], env["phoebe"]
    one = {**e, "FACEID_JOBS_PEOPLE_NAME_MIN_FACES": "1"}
    taken = run(["people", "name", phoebe, "Ross"], one)  # another person's name
    assert taken.returncode == 2 and f"already the name of {ross}" in taken.stderr, taken.stderr
    assert run(["enroll", "Phoebe", env["portraits"]["Phoebe"]], e).returncode == 0
    enrolled = run(["people", "name", phoebe, "Phoebe"], one)
    assert enrolled.returncode == 2 and "already enrolled; add --merge-into" in enrolled.stderr, enrolled.stderr
    merged = _json(["people", "name", phoebe, "Phoebe", "--merge-into", "--json"], one)
    assert merged["name"] == "Phoebe" and merged["faces_enrolled"] >= 1
    phoebe_id = next(i for i in _json(["identities", "list", "--json"], e)["identities"] if i["name"] == "Phoebe")
    assert phoebe_id["embeddings"] == 1 + merged["faces_enrolled"]  # the portrait and the person's faces
    assert run(["people", "show", "P999999"], e).returncode == 2


def test_forget_purge_removes_the_persons_faces_from_the_people(env):
    e, ross, phoebe = env["env"], env["ross"], env["phoebe"]
    before = {p["id"]: p for p in _json(["people", "--json", "--min-faces", "0"], e)["people"]}
    ross_faces = {a["face_id"] for a in before[ross]["appearances"]}
    forgot = run(["forget", "Ross", "--purge-appearances", "--json"], e)
    assert forgot.returncode == 0, forgot.stderr
    after = _json(["people", "--json", "--min-faces", "0"], e)
    ids = {p["id"]: p for p in after["people"]}
    assert ross not in ids
    listed_faces = {a["face_id"] for p in after["people"] for a in p["appearances"]}
    assert not ross_faces & listed_faces
    assert after["clustering"]["faces"] < sum(p["faces"] for p in before.values())
    # Phoebe's faces were in the rewritten record file: she keeps her id and name.
    assert phoebe in ids and ids[phoebe]["name"] == "Phoebe" and ids[phoebe]["faces"] == before[phoebe]["faces"]
    # The name is gone too: nobody is listed as Ross, and the sealed people version (read with the key: it is
    # encrypted) names nobody Ross, so naming another person Ross is not refused as taken.
    assert [p["id"] for p in after["people"] if p["name"] == "Ross"] == []
    ws = open_workspace(Settings(key_file=e["FACEID_JOBS_KEY_FILE"]), store=LocalStore(e["FACEID_JOBS_STORE"]))
    state = load_state(ws)
    assert state.by_name("Ross") is None and "Ross" not in {m.name for m in state.people.values()}
    blob = ws.store.get(people_version_key(state.version))
    assert b"Ross" not in blob and b"Phoebe" not in blob
