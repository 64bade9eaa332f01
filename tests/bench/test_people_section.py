"""The bench's people section: its command, parsing, targets and report (no models; a tiny synthetic scale run)."""

from __future__ import annotations

import json

from bench.common import REPO
from bench.render import render, render_people
from bench.run import parse_args
from bench.sections.people import friends_figures, scale_command, scale_figures, scale_targets
from bench.timing import Measured, run_command

MACHINE = {"host": "h", "cpu_model": "cpu", "cores_usable": 2, "memory_gib": 8, "onnxruntime": "1",
           "opencv": "5", "faiss": "1"}


def _scale_out(**over) -> dict:
    """What `python -m bench.people scale` prints, with figures as measured at 1M on a quiet machine."""
    return {"case": "scale", "faces": 999_812, "nodes": 222_301, "identities": 16_680, "people_found": 16_702,
            "ivf": True, "identities_split": 21, "people_mixed": 0, "generate_seconds": 40.2,
            "summarise_seconds": 20.5, "knn_seconds": 95.0, "cluster_seconds": 111.3, "scratch_seconds": 131.8,
            "max_rss_gb": 2.05, "scratch_rss_gb": 1.9, "store_seconds": 20.0, "stored_videos": 1000,
            "stored_record_files": 5000, "added_faces": 10_188, "added_files": 10, "added_nodes": 2_266,
            "incremental_seconds": 9.4, "incremental_cpu_seconds": 6.1, "incremental_others_cpu_share": 0.42,
            "added_joined_their_person": 0.9991, "threads": 2, "threshold": 0.4, "nprobe": 32} | over


def _measured(wall: float = 180.0, rss_mib: float = 2150.0) -> Measured:
    return Measured(wall_s=wall, user_s=300.0, sys_s=20.0, peak_rss_mib=rss_mib, returncode=0)


def _friends_out() -> dict:
    sweep = [{"k": 10, "threshold": t, "people": 8, "people_3_faces": 7, "split": split, "missing": [],
              "impure_faces": 0, "pair_accuracy": acc, "persons": {"P000001": {"Joey": 27}}}
             for t, split, acc in ((0.4, [], 1.0), (0.55, ["Ross"], 0.9904))]
    return {"case": "friends", "faces": 224, "nodes": 24, "labelled_faces": 200, "labelled_pairs": 19_900,
            "label_counts": {"Joey": 27}, "sweep": sweep,
            "pair_accuracy_k10": {"whispers@0.4": 1.0, "avg-link-faces@0.4": 0.9719,
                                  "whispers@0.55": 0.9904, "avg-link-faces@0.55": 0.9403}}


def test_the_scale_command_runs_and_its_json_parses_into_the_figures():
    # a real run of the script at a tiny size, measured from outside as the section does
    m = run_command(scale_command(3000, add=300, threads=1), cwd=REPO, timeout=120)
    assert m.ok, m.stderr
    f = scale_figures(json.loads(m.stdout), m, 3000, 300)
    assert f["faces"] + f["added_faces"] == 3300  # how the script splits is random; the sum is not
    assert 0 < f["tracks"] <= f["faces"] and 0 < f["identities"] <= f["tracks"]
    assert f["knn"] == "exact"  # far below the size that needs IVF
    assert f["identities_split"] == 0 and f["people_mixed"] == 0  # synthetic identities are well apart
    assert f["peak_rss_mib"] == m.peak_rss_mib > 50 and f["command_wall_s"] == m.wall_s > 0
    # below the sizes the issue names: measured, neither pass nor fail
    assert [t["met"] for t in scale_targets(f)] == [None, None, None]


def test_targets_are_judged_at_the_sizes_asked_for():
    f = scale_figures(_scale_out(), _measured(), 1_000_000)
    assert f["faces_asked"] == 1_000_000 and f["faces"] == 999_812
    t = {x["target"]: x for x in scale_targets(f)}
    assert t["1,000,000 faces from scratch: seconds"] == {
        "target": "1,000,000 faces from scratch: seconds", "value": 131.8, "op": "≤", "goal": 600.0, "met": True}
    assert t["1,000,000 faces from scratch: peak RSS GiB"]["value"] == 2150.0 / 1024
    assert t["1,000,000 faces from scratch: peak RSS GiB"]["met"] is True
    assert t["+10,000 faces to 1,000,000, incremental: seconds"]["met"] is True
    slow = scale_targets(scale_figures(_scale_out(scratch_seconds=700.0, incremental_seconds=12.0),
                                       _measured(rss_mib=5000.0), 1_000_000))
    assert [x["met"] for x in slow] == [False, False, False]


def test_render_shows_scale_targets_commands_and_the_friends_tables():
    scale = scale_figures(_scale_out(), _measured(), 1_000_000)
    section = {"scale": scale, "targets": scale_targets(scale),
               "commands": {"scale": "python -m bench.people scale --faces 1000000 --add 10000 --threads 2"},
               "friends": friends_figures(_friends_out(), _measured(wall=9.5, rss_mib=360.0))}
    assert "persons" not in section["friends"]["sweep"][0]  # the per-person breakdown stays out of the JSON
    text = "\n".join(render_people(section))
    assert "## People discovery at scale (999,812 synthetic faces, 2 FAISS threads)" in text
    assert ("| 999,812 | 222,301 | 16,680 | 16,702 | IVF (nprobe 32) | 131.8 | 20.5 | 95.0 | 16.3 | 21 | 0 | 180.0 "
            "| 320.0 | 2,150 |") in text
    assert "| 10,188 | 2,266 | 9.40 | 6.10 | 42% | 0.9991 |" in text
    assert "| 1,000,000 faces from scratch: seconds | 131.80 | ≤ 600.0 | pass |" in text
    assert "| 1,000,000 faces from scratch: peak RSS GiB | 2.10 | ≤ 4.0 | pass |" in text
    assert "| +10,000 faces to 1,000,000, incremental: seconds | 9.40 | ≤ 10.0 | pass |" in text
    assert "`python -m bench.people scale --faces 1000000 --add 10000 --threads 2`" in text
    assert "Targets of the issue (2 cores):" in text and "measured below the size" not in text
    assert "| 0.55 | 10 | 8 | 7 | Ross | – | 0 | 0.9904 |" in text
    assert "| threshold | whispers | avg-link-faces |" in text and "| 0.4 | 1.0000 | 0.9719 |" in text
    report = render({"date": "d", "runs": 1, "device": "cpu", "gpu": "none", "command": "c", "machine": MACHINE,
                     "sections": {"people": section}})
    assert "## People discovery at scale" in report and "### Friends clip" in report


def test_render_marks_sizes_below_the_targets_and_a_failed_friends_sweep():
    scale = scale_figures(_scale_out(faces=99_800), _measured(), 100_000)
    text = "\n".join(render_people({"scale": scale, "targets": scale_targets(scale), "commands": {},
                                    "friends_error": "RuntimeError: bench.people friends: no weights"}))
    assert "| 1,000,000 faces from scratch: seconds | 131.80 | ≤ 600.0 | – |" in text
    assert "| +10,000 faces to 1,000,000, incremental: seconds | 9.40 | ≤ 10.0 | – |" in text
    assert "measured below the size the target names" in text
    assert "Friends sweep failed: `RuntimeError: bench.people friends: no weights`" in text


def test_quick_runs_people_only_when_named_and_at_the_size_given():
    assert "people" in parse_args([]).sections and parse_args([]).people_faces == 1_000_000
    assert "people" not in parse_args(["--quick"]).sections
    a = parse_args(["--quick", "--sections", "people", "--people-faces", "100000"])
    assert a.sections == ["people"] and a.people_faces == 100_000
