"""Archive scale: `faceid-jobs process` over many short videos, first run and re-check.

    faceid-jobs process FOLDER --store TMP --json [--dask-local 2]   (first run, fresh store)
    faceid-jobs process FOLDER --store TMP --json                    (again, unchanged)

Short generated clips (1 s, a few 96×96 frames each, different noise so each
has its own fingerprint): 1,000 in a local folder and 200 on S3 (moto on
127.0.0.1, when moto is installed; the archive in one bucket, the store in
another). Every figure is a whole command measured from outside (wall, CPU,
peak RSS):

- first run of the local archive on a fresh store, threads (the default) and
  `--dask-local 2`: videos / s and video s / s;
- the same first run over 1 and 100 of those videos (fresh stores), and the
  re-runs of 1, 100 and all of them: peak RSS against the number of videos;
- re-run of the unchanged archive, for 1 video and for all of them, so the
  cost per unchanged video is (all − one) / (videos − 1) beyond the fixed
  start-up (interpreter, models, store); the same on S3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.common import log, stats
from bench.loopback_s3 import moto_server
from bench.sections.context import Context
from bench.timing import Measured, run_command

VIDEOS, QUICK_VIDEOS = 1000, 50  # the local archive
S3_VIDEOS, QUICK_S3_VIDEOS = 200, 20  # the archive on the loopback S3 server
FEW = 100  # the middle size of the peak-RSS-against-videos figures (--quick: 10)
DASK_WORKERS = 2
# the goals
RERUN_MS_PER_VIDEO_GOAL = 2.0  # ms per unchanged local video beyond the fixed start-up
S3_RERUN_GOAL_S, S3_RERUN_GOAL_VIDEOS = 10.0, 200  # 200 unchanged S3 videos
RSS_FLAT_GOAL = 1.2  # peak RSS at the most videos / at 1 video


def make_clips(folder: Path, count: int, frames: int = 5, fps: float = 5.0, side: int = 96) -> list[Path]:
    """`count` tiny mp4 clips of `frames` frames, each of its own random noise (its own fingerprint)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        path = folder / f"clip-{i:05d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (side, side))
        for _ in range(frames):
            writer.write(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
        writer.release()
        paths.append(path)
    return paths


def linked_subset(clips: list[Path], folder: Path) -> Path:
    """A folder of hard links to `clips`: the same files (inodes) under other names."""
    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        os.link(clip, folder / clip.name)
    return folder


def _process(ctx: Context, source: str, store: str, env: dict[str, str], *extra: str) -> tuple[Measured, dict]:
    a = ctx.args
    m = run_command([str(ctx.cli()), "process", source, "--store", store, "--json", "--sample-fps", "1",
                     "--device", a.device, "--weights-dir", str(a.weights_dir), *extra], env=env, timeout=3600)
    if not m.ok:
        raise RuntimeError(f"faceid-jobs process {source}: {m.error_line()}")
    return m, json.loads(m.stdout)


def first_run_figures(m: Measured, summary: dict[str, Any]) -> dict[str, Any]:
    """A first run's whole-command figures and rates (from outside), the in-flow ones beside them."""
    videos, video_s = summary["videos"], summary.get("video_seconds", 0.0)
    return m.figures() | {"videos": videos, "video_seconds": video_s,
                          "videos_per_s": videos / m.wall_s, "video_s_per_s": video_s / m.wall_s,
                          "inflow_wall_s": summary.get("wall_seconds"), "orchestrator": summary.get("orchestrator")}


def _first_runs(ctx: Context, folders: dict[int, Path], env: dict[str, str]) -> tuple[dict, dict, str]:
    """First runs on fresh stores: all videos with threads and with Dask, then the smaller subsets."""
    count = max(folders)
    every = str(folders[count])
    out: dict[str, Any] = {}
    rss: dict[str, float] = {}
    for label, extra in (("threads", ()), (f"--dask-local {DASK_WORKERS}", ("--dask-local", str(DASK_WORKERS)))):
        log(f"archive: first run of {count} videos, {label}")
        m, summary = _process(ctx, every, str(ctx.tmp / f"first-{label.strip('-').replace(' ', '')}"), env, *extra)
        if summary["videos"] != count or summary["videos_unchanged"]:
            raise RuntimeError(f"first run ({label}) saw {summary['videos']} videos, "
                               f"{summary['videos_unchanged']} unchanged; expected {count} new")
        out[label] = first_run_figures(m, summary)
    rss[str(count)] = out["threads"]["peak_rss_mib"]
    for n in sorted(folders)[:-1]:
        m, summary = _process(ctx, str(folders[n]), str(ctx.tmp / f"first-{n}"), env)
        rss[str(n)] = m.peak_rss_mib
    return out, rss, str(ctx.tmp / "first-threads")


def _recheck(ctx: Context, folders: dict[str, str], store: str, env: dict[str, str], runs: int,
             first: bool = True) -> dict[str, Any]:
    """Timed re-runs of each folder of an archive already processed (`folders`: videos → folder).

    The smaller folders name the same objects under other names: their first
    run only writes their sources marks (the fingerprints are in the store)."""
    sizes = sorted(folders, key=int)
    count = int(sizes[-1])
    out: dict[str, Any] = {"videos": count}
    if first:
        m, summary = _process(ctx, folders[sizes[-1]], store, env)
        out["first_run"] = first_run_figures(m, summary)
    for n in sizes[:-1]:
        _process(ctx, folders[n], store, env)
    walls: dict[str, list[float]] = {n: [] for n in sizes}
    rss: dict[str, list[float]] = {n: [] for n in sizes}
    for _ in range(runs):
        for n in sizes:
            m, again = _process(ctx, folders[n], store, env)
            walls[n].append(m.wall_s)
            rss[n].append(m.peak_rss_mib)
            if again["videos_unchanged"] != int(n):
                raise RuntimeError(f"re-run read {int(n) - again['videos_unchanged']} of {n} unchanged videos")
    per_video = (min(walls[sizes[-1]]) - min(walls[sizes[0]])) / max(1, count - int(sizes[0]))
    return out | {"rerun_one_wall_s": stats(walls[sizes[0]]), "rerun_all_wall_s": stats(walls[sizes[-1]]),
                  "rerun_wall_s": {n: stats(w) for n, w in walls.items()},
                  "rerun_peak_rss_mib": {n: stats(r) for n, r in rss.items()},
                  "per_unchanged_video_ms": per_video * 1000.0}


def rss_growth(by_videos: dict[str, float]) -> float | None:
    """Peak RSS at the most videos / at the fewest (None without two sizes)."""
    if len(by_videos) < 2:
        return None
    sizes = sorted(by_videos, key=int)
    return by_videos[sizes[-1]] / by_videos[sizes[0]]


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, pass/fail (None where not measured or measured below the size named)."""
    res: list[dict[str, Any]] = []

    def add(what: str, value: float | None, goal: float, judged: bool = True) -> None:
        res.append({"target": what, "value": value, "goal": goal, "op": "≤",
                    "met": None if value is None or not judged else value <= goal})

    local, s3 = out.get("local") or {}, out.get("s3") or {}
    add("re-run, local: ms per unchanged video beyond start-up", local.get("per_unchanged_video_ms"),
        RERUN_MS_PER_VIDEO_GOAL)
    s3_all = (s3.get("rerun_all_wall_s") or {}).get("median") if "error" not in s3 else None
    add(f"re-run, S3: wall s for {s3.get('videos', S3_RERUN_GOAL_VIDEOS)} unchanged videos", s3_all,
        S3_RERUN_GOAL_S, s3.get("videos", 0) >= S3_RERUN_GOAL_VIDEOS)
    count = local.get("videos", 0)
    first_rss = local.get("first_run_peak_rss_mib") or {}
    # From 1 video (one chunk at a time) to many, every worker runs a chunk at once: that step is set
    # by `workers`, as in the memory section, so it is shown but judged only past it (next row);
    # growth past it is what the number of videos adds.
    busy = {n: v for n, v in first_rss.items() if int(n) > 1}
    add(f"peak RSS, first run: {count} videos / 1 (includes the step to every worker busy)",
        rss_growth(first_rss), RSS_FLAT_GOAL, judged=len(busy) <= 1)
    if len(busy) > 1:
        add(f"peak RSS flat, first run: {count} videos / {min(busy, key=int)} (every worker busy)",
            rss_growth(busy), RSS_FLAT_GOAL)
    rerun_rss = {n: s["median"] for n, s in (local.get("rerun_peak_rss_mib") or {}).items()}
    add(f"peak RSS flat, re-run: {count} videos / 1", rss_growth(rerun_rss), RSS_FLAT_GOAL)
    return res


def run(ctx: Context) -> dict[str, Any]:
    """First runs and re-checks of a local archive, then the re-check on S3 (loopback server)."""
    if ctx.cli() is None:
        return {"error": "faceid-jobs console script not installed"}
    quick = ctx.args.quick
    count, s3_count = (QUICK_VIDEOS, QUICK_S3_VIDEOS) if quick else (VIDEOS, S3_VIDEOS)
    few = min(FEW // 10 if quick else FEW, count - 1)
    runs = max(1, ctx.args.runs)
    clips = make_clips(ctx.tmp / "archive", count)
    folders = {1: linked_subset(clips[:1], ctx.tmp / "archive-1"),
               few: linked_subset(clips[:few], ctx.tmp / f"archive-{few}"), count: ctx.tmp / "archive"}
    env = ctx.child_env()
    log(f"archive: {count} short clips locally, {s3_count} on S3; first runs, then re-runs unchanged ({runs} runs)")
    first, first_rss, store = _first_runs(ctx, folders, env)
    local = _recheck(ctx, {str(n): str(f) for n, f in folders.items()}, store, env, runs, first=False)
    local |= {"first_run": first, "first_run_peak_rss_mib": first_rss}
    cmd = "faceid-jobs process ARCHIVE --store STORE --json --sample-fps 1 --device cpu --weights-dir W"
    out: dict[str, Any] = {"local": local, "commands": {
        "first run (fresh store)": cmd, "first run, Dask": f"{cmd} --dask-local {DASK_WORKERS}",
        "re-run (unchanged)": cmd + " (again, same store)",
        "S3": cmd.replace("ARCHIVE", "s3://bench-footage/all/").replace("STORE", "s3://bench-store/store")}}
    try:
        import moto  # noqa: F401
    except ImportError:
        out["s3"] = {"error": "moto not installed"}
    else:
        import logging

        from faceid_jobs.storage.s3 import make_client

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
        with moto_server("bench") as aws:
            client = make_client()
            for bucket in ("bench-footage", "bench-store"):
                client.create_bucket(Bucket=bucket)
            for clip in clips[:s3_count]:
                client.upload_file(str(clip), "bench-footage", f"all/{clip.name}")
            client.upload_file(str(clips[0]), "bench-footage", f"one/{clips[0].name}")
            log(f"archive: {s3_count} of the clips on S3 (moto, 127.0.0.1)")
            out["s3"] = _recheck(ctx, {"1": "s3://bench-footage/one/", str(s3_count): "s3://bench-footage/all/"},
                                 "s3://bench-store/store", ctx.child_env(aws), runs)
    out["targets"] = targets(out)
    return out


if __name__ == "__main__":  # python -m bench.sections.archive [VIDEOS [S3_VIDEOS]]: this section alone
    import argparse
    import sys

    from bench.common import default_weights_dir

    args = argparse.Namespace(quick=False, runs=2, device="cpu", weights_dir=default_weights_dir(), keep_temp=False)
    if len(sys.argv) > 1:
        VIDEOS = int(sys.argv[1])
    if len(sys.argv) > 2:
        S3_VIDEOS = int(sys.argv[2])
    context = Context(args)
    try:
        print(json.dumps(run(context), indent=1))
    finally:
        context.cleanup()
