"""`faceid-jobs people` as a user runs it: list (json, html, min-faces, limit, rebuild), show (json, html), merge,
ignore, unknown ids on every subcommand and an empty archive (synthetic store: no models needed)."""

from __future__ import annotations

import json
import re

import numpy as np

from faceid_jobs.config import Settings
from faceid_jobs.storage import LocalStore
from faceid_jobs.workspace import open_workspace
from tests.cli.runner import run
from tests.synthetic_store import add_video, faces_of, people


def test_people_cli(tmp_path):
    key = tmp_path / "key.json"
    ws = open_workspace(Settings(key_file=str(key)), create_key=True, store=LocalStore(tmp_path / "s"))
    rng = np.random.default_rng(0)
    p = people(("A", "B", "C"), seed=3)
    add_video(ws, "v1", [[(v, 1) for v in faces_of(p["A"], 5, rng)] + [(v, 2) for v in faces_of(p["B"], 3, rng)],
                         [(v, 3) for v in faces_of(p["C"], 2, rng)] + [(v, 4) for v in faces_of(p["A"], 2, rng)]])
    env = {"FACEID_JOBS_KEY_FILE": str(key), "FACEID_JOBS_WEIGHTS_DIR": str(tmp_path / "no-weights")}
    base = ["people", "--store", tmp_path / "s"]
    res = run([*base, "--json"], env)
    assert res.returncode == 0, res.stderr
    body = json.loads(res.stdout)
    assert [x["faces"] for x in body["people"]] == [7, 3]  # C (2 faces) is below --min-faces 3
    assert body["clustering"]["faces"] == 12 and "seconds" in body["clustering"]
    top = body["people"][0]
    assert top["id"] == "P000001" and top["videos"] == 1 and top["best"]["video"] == "/videos/v1.mp4"
    assert len(json.loads(run([*base, "--json", "--min-faces", "0", "--limit", "2"], env).stdout)["people"]) == 2
    html = tmp_path / "people.html"
    res = run([*base, "--html", html, "--rebuild"], env)
    assert res.returncode == 0 and "P000001" in html.read_text() and "P000001" in res.stdout
    show = json.loads(run([*base, "show", "p000001", "--json"], env).stdout)
    assert show["id"] == "P000001" and show["faces"] == 7
    page = tmp_path / "p1.html"
    res = run([*base, "show", "P000001", "--html", page], env)
    assert res.returncode == 0 and f"wrote {page}" in res.stderr, res.stderr
    assert re.findall(r"<article class='person' id='(P\d+)'>", page.read_text()) == ["P000001"]
    assert "7 faces" in page.read_text()
    for args in (["show", "P424242"], ["name", "P424242", "Zed"], ["merge", "P000001", "P424242"],
                 ["ignore", "P424242"], ["show", "P424242", "--html", tmp_path / "none.html"]):
        res = run([*base, *args], env)
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, (args, res.stderr)
        assert "P424242: no such person" in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
    assert not (tmp_path / "none.html").exists()
    assert run([*base, "merge", "P000002", "P000003", "--json"], env).returncode == 0
    assert run([*base, "ignore", "P000001"], env).returncode == 0
    listed = json.loads(run([*base, "--json", "--min-faces", "0", "--rebuild"], env).stdout)["people"]
    assert [(x["id"], x["faces"]) for x in listed] == [("P000002", 5)]
    empty = run(["people", "--store", tmp_path / "empty", "--json"], env)
    assert empty.returncode == 0 and json.loads(empty.stdout)["people"] == []
