"""Enrollment end to end, run as a user would (installed command, real models, real footage).

The six Friends portraits are enrolled with --from-dir, a 16-second cut of the clip (end of shot 2 to the
start of shot 6) is processed at 2 frames/s, then: find, verify, relabel after a gallery change with the
video moved away, forget with --purge-appearances, and annotate. The tests run in file order and share
one store; the later ones change the gallery.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from tests.cli.runner import cut_clip, run
from tests.friends import EDGE, SHOTS, absent_shots, expected_shots, shot_of

pytestmark = pytest.mark.models

START = 180  # first frame of the cut: shot 2 (Monica, Chandler), 3 and 5 (Phoebe, Ross), 4 (Rachel, Joey), 6
SECONDS = 16.0
FPS = 23.976


def _frame(t: float) -> int:
    """Frame of the whole clip at time `t` of the cut."""
    return START + round(t * FPS)


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir, friends_clip, portraits):
    root = tmp_path_factory.mktemp("enroll-cli")
    faces = root / "faces"
    faces.mkdir()
    for name, path in portraits.items():
        (faces / f"{name}.png").symlink_to(path)
    videos = root / "videos"
    videos.mkdir()
    cut_clip(friends_clip, videos / "cut.mp4", SECONDS, START)
    env = {"FACEID_JOBS_STORE": str(root / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
           "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(root / "key.json")}
    assert run(["keys", "init"], env).returncode == 0  # enroll never makes a key
    enrolled = run(["enroll", "--from-dir", faces, "--json"], env)
    assert enrolled.returncode == 0, enrolled.stderr
    data = json.loads(enrolled.stdout)
    assert data["gallery_version"] == 1 and [e["name"] for e in data["enrolled"]] == sorted(portraits)
    assert data["event_emitted"] is False  # no Prefect server configured
    processed = run(["process", videos / "cut.mp4", "--sample-fps", "2", "--chunk-seconds", "8", "--json"], env)
    assert processed.returncode == 0, processed.stderr
    return {"env": env, "root": root, "faces": faces, "video": videos / "cut.mp4"}


def _find(env, name):
    result = run(["find", name, "--json"], env)
    return result.returncode, (json.loads(result.stdout) if result.stdout else None), result.stderr


def _shots(appearance) -> set[int]:
    return {shot_of(_frame(appearance["start_s"])), shot_of(_frame(appearance["end_s"])),
            shot_of(appearance["frame"] + START)}


def _assert_ross_found(data):
    shots = [_shots(a) for a in data["appearances"]]
    assert {3, 5} <= set().union(*shots), shots
    assert all(s <= expected_shots("Ross") for s in shots), shots
    assert not set().union(*shots) & absent_shots("Ross")
    for a in data["appearances"]:
        assert set(a) >= {"video", "start_s", "end_s", "timestamp_s", "frame", "similarity"}
        assert a["video"].endswith("cut.mp4") and a["start_s"] <= a["timestamp_s"] <= a["end_s"]
        assert a["similarity"] >= 0.4


def test_find_ross_gives_shots_3_and_5_only(env):
    rc, data, err = _find(env["env"], "Ross")
    assert rc == 0, err
    assert data["identity"] == "Ross" and data["labels"]["stale_files"] == 0
    _assert_ross_found(data)
    table = run(["find", "Ross"], env["env"])
    assert table.returncode == 0 and "cut.mp4" in table.stdout


def test_labelled_faces_agree_with_the_portraits(env):
    from faceid_jobs.config import Settings
    from faceid_jobs.identity.labels import LABELS_PREFIX, read_labels
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(Settings(store=env["env"]["FACEID_JOBS_STORE"], key_file=env["env"]["FACEID_JOBS_KEY_FILE"]))
    labelled: dict[str, set[int]] = {}
    for key in ws.store.list(LABELS_PREFIX):
        for row in read_labels(ws, key).to_pylist():
            if row["identity"] is None:
                continue
            shot = shot_of(START + row["frame_index"])
            assert row["identity"] in SHOTS[shot][2] or (row["identity"], shot) in EDGE, (row, shot)
            labelled.setdefault(row["identity"], set()).add(shot)
    assert {"Chandler", "Joey", "Phoebe", "Rachel", "Ross"} <= set(labelled)
    assert labelled["Ross"] == {3, 5} and labelled["Phoebe"] == {3, 5}


def test_verify_exit_codes(env, media_dir):
    faces = env["faces"]
    match = run(["verify", faces / "Ross.png", "--identity", "Ross", "--json"], env["env"])
    assert match.returncode == 0, match.stderr
    data = json.loads(match.stdout)
    assert data["match"] and data["similarity"] > 0.9 and data["liveness"] > 0.5
    other = run(["verify", faces / "Rachel.png", "--identity", "Ross"], env["env"])
    assert other.returncode == 1 and "no match" in other.stdout
    spoof = run(["verify", media_dir / "liveness" / "spoof_print_1.jpg", "--identity", "Ross"], env["env"])
    assert spoof.returncode == 3 and "does not look live" in spoof.stderr and "Traceback" not in spoof.stderr
    unknown = run(["verify", faces / "Ross.png", "--identity", "Gunther"], env["env"])
    assert unknown.returncode == 2 and "not enrolled" in unknown.stderr
    missing = run(["verify", faces / "nobody.png", "--identity", "Ross"], env["env"])
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_annotate_writes_a_playable_video_with_the_input_frames_and_fps(env, friends_clip):
    source = cut_clip(friends_clip, env["root"] / "short.mp4", 2.5, 300)  # shot 3: Phoebe and Ross
    result = run(["annotate", source, "-o", env["root"] / "annotated.mp4", "--json"], env["env"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["identified"] > 0
    src, dst = cv2.VideoCapture(str(source)), cv2.VideoCapture(str(env["root"] / "annotated.mp4"))
    assert int(dst.get(cv2.CAP_PROP_FRAME_COUNT)) == int(src.get(cv2.CAP_PROP_FRAME_COUNT)) == data["frames"] == 59
    assert dst.get(cv2.CAP_PROP_FPS) == pytest.approx(src.get(cv2.CAP_PROP_FPS), abs=1e-3)
    frames = 0
    while True:
        ok, frame = dst.read()
        if not ok:
            break
        frames += 1
        assert frame.shape == (720, 1280, 3)
    assert frames == 59


def test_relabel_after_enrolling_needs_no_video(env):
    e = env["env"]
    assert run(["identities", "remove", "Ross"], e).returncode == 0
    moved = env["root"] / "elsewhere.mp4"
    shutil.move(env["video"], moved)  # no video to decode from here on
    try:
        relabelled = run(["relabel", "--json"], e)
        assert relabelled.returncode == 0, relabelled.stderr
        assert json.loads(relabelled.stdout)["gallery_version"] == 2
        assert _find(e, "Ross")[0] == 2  # not enrolled
        assert run(["enroll", "Ross", env["faces"] / "Ross.png"], e).returncode == 0
        rc, data, err = _find(e, "Ross")  # enrolled, but the labels are of the previous gallery
        assert rc == 1 and data["appearances"] == [] and data["labels"]["stale_files"] > 0 and "relabel" in err
        relabelled = run(["relabel", "--json"], e)
        assert relabelled.returncode == 0, relabelled.stderr
        report = json.loads(relabelled.stdout)
        assert report["gallery_version"] == 3 and report["files"] > 0 and report["faces"] > 0
        assert report["faces_per_second"] > 0
        rc, data, err = _find(e, "Ross")
        assert rc == 0, err
        _assert_ross_found(data)
        listed = json.loads(run(["identities", "list", "--json"], e).stdout)
        assert listed["gallery_version"] == 3 and len(listed["identities"]) == 6
        shown = json.loads(run(["identities", "show", "Ross", "--json"], e).stdout)
        assert shown["photos"][0]["photo"] == "Ross.png" and "embedding" not in json.dumps(shown)
    finally:
        shutil.move(moved, env["video"])


def test_forget_with_purge_removes_ross_from_find_and_search(env):
    e = env["env"]
    before = json.loads(run(["search", env["faces"] / "Ross.png", "--json"], e).stdout)
    assert before["hits"], "Ross is in the footage before forgetting"
    forgot = run(["forget", "Ross", "--purge-appearances", "--json"], e)
    assert forgot.returncode == 0, forgot.stderr
    data = json.loads(forgot.stdout)
    assert data["faces_deleted"] > 0 and data["record_files_rewritten"] > 0 and data["index"]["published"]
    assert data["audit_key"].startswith("audit/") and data["index_versions_holding_data"]
    assert _find(e, "Ross")[0] == 2  # forgotten
    search = run(["search", env["faces"] / "Ross.png", "--json"], e)
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["hits"] == []
    # Enrolled again, Ross is still not found: his faces are gone from the records.
    assert run(["enroll", "Ross", env["faces"] / "Ross.png"], e).returncode == 0
    assert run(["relabel"], e).returncode == 0
    rc, data, _ = _find(e, "Ross")
    assert rc == 1 and data["appearances"] == []
    rc, data, _ = _find(e, "Phoebe")  # the others are untouched
    assert rc == 0 and data["appearances"]
    audit = sorted(Path(e["FACEID_JOBS_STORE"], "audit").glob("*.json"))
    actions = [json.loads(p.read_text())["action"] for p in audit]
    assert actions.count("enroll") == 3 and "remove" in actions and "forget" in actions
