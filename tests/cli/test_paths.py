"""Videos are stored by absolute path, so reports and `search` work from any folder; tables
tell same-named videos apart by the shortest path suffix; a renamed copy is counted once."""

from __future__ import annotations

import json
import shutil

import pytest

from faceid_jobs.cli.common import short_paths
from tests.cli.runner import cut_clip, run


def test_short_paths_tell_videos_apart():
    assert short_paths(["/m/A/clip.mp4", "/m/B/clip.mp4", "/m/x/talk.mp4"]) == {
        "/m/A/clip.mp4": "A/clip.mp4", "/m/B/clip.mp4": "B/clip.mp4", "/m/x/talk.mp4": "talk.mp4"}
    assert short_paths(["s3://bucket/day1/cam.mp4", "s3://bucket/day2/cam.mp4"]) == {
        "s3://bucket/day1/cam.mp4": "day1/cam.mp4", "s3://bucket/day2/cam.mp4": "day2/cam.mp4"}
    assert short_paths(["/x/a/v.mp4", "/y/a/v.mp4"]) == {"/x/a/v.mp4": "x/a/v.mp4", "/y/a/v.mp4": "y/a/v.mp4"}
    # A name that is a suffix of another is shown whole; the other by what differs.
    assert short_paths(["clip.mp4", "/m/A/clip.mp4"]) == {"clip.mp4": "clip.mp4", "/m/A/clip.mp4": "A/clip.mp4"}
    assert short_paths(iter(["/m/A/clip.mp4", "/m/A/clip.mp4"])) == {"/m/A/clip.mp4": "clip.mp4"}
    assert short_paths([]) == {}


@pytest.fixture()
def setup(tmp_path, friends_clip, weights_dir):
    """A working folder with footage/A/clip.mp4 and footage/B/clip.mp4 (different cuts), and the env."""
    work = tmp_path / "work"
    for sub in ("A", "B"):
        (work / "footage" / sub).mkdir(parents=True)
    cut_clip(friends_clip, work / "footage" / "A" / "clip.mp4", 3.0)
    cut_clip(friends_clip, work / "footage" / "B" / "clip.mp4", 3.0, start_frame=150)
    env = {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json"), "FACEID_JOBS_STORE": str(tmp_path / "store")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return work, elsewhere, env


def _process(args, env, cwd):
    done = run(["process", *args, "--sample-fps", "2", "--json"], env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.models
def test_relative_sources_are_stored_absolute_and_search_works_elsewhere(setup, portraits):
    work, elsewhere, env = setup
    a, b = (str(work / "footage" / sub / "clip.mp4") for sub in ("A", "B"))
    summary = _process(["footage"], env, work)  # a relative source, from the working folder
    assert summary["videos"] == 2 and summary["copies"] == []

    # Another folder: the stored names still lead to the videos.
    found = run(["search", portraits["Chandler"], "--top-k", "200", "--threshold", "0.0", "--json"],
                env, cwd=elsewhere)
    assert found.returncode == 0, found.stderr
    videos = {hit["video"] for hit in json.loads(found.stdout)["hits"]}
    assert videos == {a, b}, videos  # absolute, both cuts have faces

    # The table tells the two clip.mp4 apart; the HTML report finds every video's frames.
    table = run(["search", portraits["Chandler"], "--top-k", "200", "--threshold", "0.0",
                 "--html", "report.html"], {**env, "COLUMNS": "200"}, cwd=elsewhere)
    assert table.returncode == 0, table.stderr
    assert "A/clip.mp4" in table.stdout and "B/clip.mp4" in table.stdout
    html = (elsewhere / "report.html").read_text()
    assert "not available" not in html and "could not be shown" not in html and "not in the video" not in html
    assert html.count("data:image/") >= 2

    # `find` from that other folder lists the same absolute names.
    assert run(["enroll", "Chandler", portraits["Chandler"]], env, cwd=elsewhere).returncode == 0
    assert run(["relabel"], env, cwd=elsewhere).returncode == 0
    listed = run(["find", "Chandler", "--json"], env, cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    appearances = json.loads(listed.stdout)["appearances"]
    assert appearances and {x["video"] for x in appearances} <= {a, b}


@pytest.mark.models
def test_renamed_copy_is_counted_once(setup):
    work, elsewhere, env = setup
    a = work / "footage" / "A" / "clip.mp4"
    first = _process([a], env, elsewhere)
    assert first["faces_in_store"] > 0

    # A byte-identical copy under another name, in the same run as its original.
    copy = work / "footage" / "C" / "renamed.mp4"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    second = _process(["footage/A", "footage/C"], env, work)
    assert second["videos"] == 2 and second["videos_unchanged"] == 1
    assert second["copies"] == [{"video": str(copy), "same_as": str(a)}]
    assert second["faces_in_store"] == first["faces_in_store"]  # not twice
    assert second["chunks"]["done"] == 0  # the copy's content was not analysed again

    # A re-run reads neither (the copy was marked too) and still counts the faces once.
    third = _process(["footage/C", "footage/A"], env, work)
    assert third["videos_unchanged"] == 2 and third["chunks"]["done"] == 0
    assert third["copies"] == [{"video": str(a), "same_as": str(copy)}]
    assert third["faces_in_store"] == first["faces_in_store"]

    # Both names in one first run: analysed once, counted once, said so in the summary.
    fresh = {**env, "FACEID_JOBS_STORE": str(work / "store2")}
    done = run(["process", "footage/A", "footage/C", "--sample-fps", "2"], {**fresh, "COLUMNS": "200"}, cwd=work)
    assert done.returncode == 0, done.stderr
    assert "copies (same content, counted once)" in done.stdout
    assert "renamed.mp4 is the same video as clip.mp4" in done.stderr.replace("\n", " ")
    both = _process(["footage/A", "footage/C"], fresh, work)
    assert both["faces_in_store"] == first["faces_in_store"]


@pytest.mark.models
@pytest.mark.parametrize("old_name", ["footage/A/clip.mp4", "../work/footage/A/clip.mp4"])
def test_a_store_with_relative_names_is_renamed_by_the_next_process(setup, portraits, old_name):
    """A store written before names were absolute: its entry and index rows say `footage/A/clip.mp4`
    (processed from the folder above) or `../work/footage/A/clip.mp4` (from a folder beside it).
    The next `process` over the same video (skipped unread) renames both to the absolute path."""
    from dataclasses import replace

    from faceid_jobs.config import Settings
    from faceid_jobs.index.merge import mark_stale
    from faceid_jobs.storage.catalog import list_entries, save_entry
    from faceid_jobs.storage.layout import record_prefix
    from faceid_jobs.workspace import open_workspace

    work, elsewhere, env = setup
    a = str(work / "footage" / "A" / "clip.mp4")
    _process(["footage/A"], env, work)
    # Make it an old store: the entry names the video by a relative path, the index rows too.
    ws = open_workspace(Settings(store=env["FACEID_JOBS_STORE"], key_file=env["FACEID_JOBS_KEY_FILE"]))
    [entry] = list_entries(ws.store, ws.keys)
    save_entry(ws.store, replace(entry, uri=old_name), ws.keys)
    mark_stale(ws.store, ws.keys, ws.store.list(record_prefix(entry.analysis_id, entry.fingerprint)))
    assert run(["index", "build"], env, cwd=work).returncode == 0

    def videos() -> set[str]:
        found = run(["search", portraits["Chandler"], "--top-k", "200", "--threshold", "0.0", "--json"],
                    env, cwd=elsewhere)
        assert found.returncode == 0, found.stderr
        return {hit["video"] for hit in json.loads(found.stdout)["hits"]}

    assert videos() == {old_name}  # the old store, as it was
    again = _process(["footage/A"], env, work)
    assert again["videos_unchanged"] == 1 and again["chunks"]["done"] == 0  # not read again
    assert videos() == {a}
    [renamed] = list_entries(ws.store, ws.keys)
    assert renamed.uri == a and renamed.other_uris == ()
