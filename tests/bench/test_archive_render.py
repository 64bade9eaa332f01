"""The archive section's pure parts: its targets and its report (no models, no commands run)."""

from __future__ import annotations

from bench.render import render_archive
from bench.sections.archive import first_run_figures, rss_growth, targets
from bench.timing import Measured


def _stat(v: float) -> dict:
    return {"median": v, "min": v, "max": v, "n": 1}


def _first(wall: float, videos: int, rss: float, orchestrator: str = "local") -> dict:
    m = Measured(wall, wall * 0.8, wall * 0.1, rss, 0)
    return first_run_figures(m, {"videos": videos, "video_seconds": float(videos), "wall_seconds": wall - 2,
                                 "orchestrator": orchestrator})


def _archive(s3_videos: int = 200, s3_wall: float = 3.0, rerun_rss_all: float = 230.0) -> dict:
    local = {
        "videos": 1000,
        "first_run": {"threads": _first(50.0, 1000, 400.0), "--dask-local 2": _first(80.0, 1000, 300.0, "dask")},
        "first_run_peak_rss_mib": {"1": 350.0, "100": 390.0, "1000": 400.0},
        "rerun_wall_s": {"1": _stat(1.0), "100": _stat(1.1), "1000": _stat(2.0)},
        "rerun_peak_rss_mib": {"1": _stat(200.0), "100": _stat(210.0), "1000": _stat(rerun_rss_all)},
        "rerun_one_wall_s": _stat(1.0), "rerun_all_wall_s": _stat(2.0),
        "per_unchanged_video_ms": 1.0 / 999 * 1000,
    }
    s3 = {"videos": s3_videos, "first_run": _first(20.0, s3_videos, 300.0), "rerun_one_wall_s": _stat(1.5),
          "rerun_all_wall_s": _stat(s3_wall), "per_unchanged_video_ms": 7.5}
    out = {"local": local, "s3": s3, "commands": {"first run (fresh store)": "faceid-jobs process ARCHIVE"}}
    return out | {"targets": targets(out)}


def test_first_run_rates_come_from_the_whole_command():
    f = _first(50.0, 1000, 400.0)
    assert f["videos_per_s"] == 20.0 and f["video_s_per_s"] == 20.0
    assert f["cpu_s"] == 45.0 and f["inflow_wall_s"] == 48.0


def test_rss_growth_is_most_videos_over_fewest():
    assert rss_growth({"1000": 400.0, "1": 200.0, "100": 300.0}) == 2.0
    assert rss_growth({"1": 200.0}) is None


def test_targets_pass_fail_and_not_judged_below_the_size_named():
    t = {x["target"]: x for x in _archive()["targets"]}
    assert t["re-run, local: ms per unchanged video beyond start-up"]["met"] is True
    assert t["re-run, S3: wall s for 200 unchanged videos"]["met"] is True
    step = t["peak RSS, first run: 1000 videos / 1 (includes the step to every worker busy)"]
    assert step["value"] == 400 / 350 and step["met"] is None  # shown, judged past the step (next target)
    assert t["peak RSS flat, re-run: 1000 videos / 1"]["met"] is True
    assert t["peak RSS flat, first run: 1000 videos / 100 (every worker busy)"]["value"] == 400 / 390
    grown = {x["target"]: x for x in _archive(s3_wall=12.0, rerun_rss_all=300.0)["targets"]}
    assert grown["re-run, S3: wall s for 200 unchanged videos"]["met"] is False
    assert grown["peak RSS flat, re-run: 1000 videos / 1"]["met"] is False
    few = {x["target"]: x for x in _archive(s3_videos=20)["targets"]}  # --quick: measured, not judged
    assert few["re-run, S3: wall s for 20 unchanged videos"]["met"] is None
    assert few["re-run, S3: wall s for 20 unchanged videos"]["value"] == 3.0
    missing = targets({"local": _archive()["local"], "s3": {"error": "moto not installed"}})
    assert [x["met"] for x in missing if x["target"].startswith("re-run, S3")] == [None]


def test_render_archive_shows_first_runs_rss_by_videos_s3_and_targets():
    text = "\n".join(render_archive(_archive(s3_wall=12.0)))
    assert "| threads | 1,000 | 50.0 | 20.0 | 20.0 | 45.0 | 400 | 48.0 |" in text
    assert "| --dask-local 2 | 1,000 | 80.0 | 12.5 | 12.5 | 72.0 | 300 | 78.0 |" in text
    assert "| 1,000 | 400 | 2.00 | 230 |" in text and "| 1 | 350 | 1.00 | 200 |" in text
    assert "1.001 ms" in text  # per unchanged local video
    assert "re-run of all, unchanged: 12.00 s" in text
    assert "| re-run, S3: wall s for 200 unchanged videos | 12.00 | ≤ 10.0 | FAIL |" in text
    step_row = "| peak RSS, first run: 1000 videos / 1 (includes the step to every worker busy) | 1.14 | ≤ 1.2 | – |"
    assert step_row in text
    assert "`faceid-jobs process ARCHIVE`" in text
    no_s3 = "\n".join(render_archive({"local": _archive()["local"], "s3": {"error": "moto not installed"}}))
    assert "S3: not measured: moto not installed" in no_s3
