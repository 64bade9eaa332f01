"""Footage: every system as a whole command started from the shell, as a user types it.

    faceid-jobs process VIDEO --store TMP --json --sample-fps F --device D --weights-dir W
    bench/.venvs/naive/bin/python bench/peers/naive/naive.py VIDEO --weights-dir W --sample-fps F
    bench/.venvs/insightface/bin/python bench/peers/insightface/peer.py VIDEO --weights-dir W --sample-fps F

Rows of faceid-jobs: "cold" (fresh store, the video and model files dropped
from the OS file cache first), "fresh store" (the file cache warm from the
runs before) and "again" (a second run on the store just filled: nothing to
do). Each run is measured by bench/timing.py (wall, user+sys CPU, peak RSS);
the command's own figure (`--json` wall_seconds, the peers' loop seconds) is
kept beside it. Systems are interleaved, their order rotated run by run, and
ratios (the peer's wall / ours) are taken run by run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO, cpu_mark, log, others_share, ratio_stats, stats, video_facts
from bench.sections.context import CACHE, Context
from bench.timing import Measured, run_command

COLD = "faceid-jobs, cold"
FRESH = "faceid-jobs"
AGAIN = "faceid-jobs, again (nothing to do)"
NAIVE = "naive loop"
PEER = "InsightFace FaceAnalysis"
OURS = (COLD, FRESH, AGAIN)
REFS = (NAIVE, PEER)


def looped_video(clip: Path, loops: int) -> Path:
    """The clip looped `loops` times (MPEG-4), made once into bench/.cache."""
    from bench.synthetic import write_video

    dst = CACHE / f"{clip.stem}-x{loops}.mp4"
    if not dst.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        log(f"footage: writing {dst.name} (the clip looped {loops}×, once)")
        tmp = dst.with_suffix(".tmp.mp4")
        write_video(clip, tmp, loops=loops)
        tmp.rename(dst)
    return dst


def drop_file_cache(paths: list[Path]) -> None:
    """Ask the kernel to drop these files' pages from the page cache (no root needed)."""
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure(cmd: list[str], env: dict[str, str], timeout: float | None = None) -> tuple[Measured, float | None]:
    """The command's figures and the share of all cores other processes kept busy meanwhile."""
    t0 = cpu_mark()
    m = run_command(cmd, env=env, cwd=REPO, timeout=timeout)
    return m, others_share(t0, m.cpu_s, m.wall_s) if m.ok else None


def _inflow(name: str, m: Measured) -> dict[str, Any]:
    """What the command says of itself: faceid-jobs' `--json` summary, the peers' JSON line."""
    try:
        out = json.loads(m.stdout[m.stdout.find("{"):]) if name in OURS else json.loads(m.stdout.splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    if name in OURS:
        return {"inflow_wall_s": out.get("wall_seconds"), "frames_analysed": out.get("frames_sampled"),
                "faces": out.get("faces"), "chunks": out.get("chunks")}
    return {"inflow_wall_s": out.get("loop_s"), "load_s": out.get("load_s"),
            "frames_analysed": out.get("frames_analysed"), "faces": out.get("faces")}


def run_mode(ctx: Context, video: Path, fps: float, runs: int, systems: list[str]) -> dict[str, Any]:
    """Every system on one video at one sampling rate, `runs` times, interleaved."""
    a = ctx.args
    facts = video_facts(video)
    env = ctx.child_env()
    commands: dict[str, list[str]] = {}
    cli = ctx.cli()
    for name in systems:
        if name in OURS and cli:
            commands[name] = [str(cli), "process", str(video), "--json", "--sample-fps", f"{fps:g}",
                              "--device", a.device, "--weights-dir", str(a.weights_dir)]
        elif name == NAIVE and ctx.peer_python("naive"):
            commands[name] = [str(ctx.peer_python("naive")), str(REPO / "bench/peers/naive/naive.py"),
                              str(video), "--weights-dir", str(a.weights_dir), "--sample-fps", f"{fps:g}"]
        elif name == PEER and ctx.peer_python("insightface"):
            commands[name] = [str(ctx.peer_python("insightface")),
                              str(REPO / "bench/peers/insightface/peer.py"), str(video),
                              "--weights-dir", str(a.weights_dir), "--sample-fps", f"{fps:g}"]
    missing = {n: "its venv or console script is missing (make bench-venvs)" for n in systems
               if n not in commands}
    order = [n for n in (COLD, FRESH, NAIVE, PEER) if n in commands]
    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in commands}
    errors: dict[str, str] = {}
    for r in range(runs):
        turn = order[r % len(order):] + order[:r % len(order)] if order else []
        for name in turn:
            # A new path per store: a client remembers each store's newest index version
            # (the rollback check), so a store deleted and made again at one path is refused.
            store = Path(tempfile.mkdtemp(prefix="store-", dir=ctx.tmp))
            cmd = commands[name]
            if name in OURS:
                cmd = [*cmd[:3], "--store", str(store), *cmd[3:]]
            if name == COLD:
                drop_file_cache([video, *sorted(Path(a.weights_dir).glob("*.onnx"))])
            log(f"footage: {facts['seconds']:.0f} s video at {fps:g} fps: {name}, run {r + 1}/{runs}")
            m, others = measure(cmd, env)
            _record(raw, errors, name, m, others, facts["seconds"])
            if name == FRESH and AGAIN in commands and m.ok:
                log(f"footage: {name}: the same command again")
                m2, others2 = measure(cmd, env)
                _record(raw, errors, AGAIN, m2, others2, facts["seconds"])
            shutil.rmtree(store, ignore_errors=True)
    out: dict[str, Any] = {"video": facts, "sample_fps": fps, "systems": {}, "missing": missing,
                           "errors": errors,
                           "commands": {n: " ".join([*c[:3], "--store", "STORE", *c[3:]] if n in OURS else c)
                                        for n, c in commands.items()}}
    for name, rows in raw.items():
        if not rows:
            continue
        walls = [x["wall_s"] for x in rows]
        out["systems"][name] = {
            "runs": rows,
            "wall_s": stats(walls),
            "cpu_s": stats([x["cpu_s"] for x in rows]),
            "peak_rss_mib": stats([x["peak_rss_mib"] for x in rows]),
            "video_s_per_s": stats([facts["seconds"] / w for w in walls]),
            "inflow_wall_s": stats([x["inflow_wall_s"] for x in rows if x.get("inflow_wall_s")]),
            "inflow_video_s_per_s": stats([facts["seconds"] / x["inflow_wall_s"] for x in rows
                                           if x.get("inflow_wall_s")]),
            "frames_analysed": rows[0].get("frames_analysed"),
            "faces": rows[0].get("faces"),
            "others_cpu_share_max": max((x["others_cpu_share"] for x in rows
                                         if x["others_cpu_share"] is not None), default=None),
        }
    for ours in (COLD, FRESH):
        for ref in REFS:
            if ours in raw and ref in raw and len(raw[ours]) == len(raw[ref]):
                # run by run: their wall / ours (> 1: faceid-jobs is faster)
                out["systems"][ours][f"x {ref}"] = ratio_stats([x["wall_s"] for x in raw[ref]],
                                                               [x["wall_s"] for x in raw[ours]])
    return out


def _record(raw, errors, name: str, m: Measured, others: float | None, video_s: float) -> None:
    if not m.ok:
        errors[name] = m.error_line()
        log(f"footage: {name} failed: {errors[name]}")
        return
    raw[name].append(m.figures() | {"others_cpu_share": others} | _inflow(name, m))
    log(f"footage: {name}: {m.wall_s:.1f} s wall ({video_s / m.wall_s:.2f} video s/s), "
        f"{m.cpu_s:.1f} CPU s, {m.peak_rss_mib:.0f} MiB")


def run(ctx: Context) -> dict[str, Any]:
    """The clip at every rate of --fps, then (unless --quick) the 10-minute video."""
    a = ctx.args
    systems = [COLD, FRESH, AGAIN, NAIVE] + ([] if a.no_peer else [PEER])
    modes: dict[str, Any] = {}
    for fps in a.fps_list:
        modes[f"clip, {_rate(fps)}"] = run_mode(ctx, a.clip, fps, a.runs, systems)
    if not a.quick and a.long_loops:
        long = looped_video(a.clip, a.long_loops)
        for fps in a.fps_list:
            # the peers at every frame on 10 minutes take ~45 min: only with --long-peers-every-frame
            peers = fps > 0 or a.long_peers_every_frame
            modes[f"10 min, {_rate(fps)}"] = run_mode(
                ctx, long, fps, a.long_runs, systems if peers else [FRESH, AGAIN])
    out = {"modes": modes, "targets": targets(modes)}
    ctx.section_results["footage"] = out
    return out


def _rate(fps: float) -> str:
    return "every frame" if fps <= 0 else f"{fps:g} fps"


def targets(modes: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, pass/fail, from the medians of the fresh-store rows."""

    def sys_of(mode: str) -> dict[str, Any]:
        return modes.get(mode, {}).get("systems", {}).get(FRESH, {})

    def ratio(mode: str, ref: str) -> float | None:
        r = sys_of(mode).get(f"x {ref}")
        return r["median"] if r and r.get("n") else None

    out = []

    def add(what: str, value: float | None, goal: float) -> None:
        out.append({"target": what, "value": value, "goal": goal,
                    "met": None if value is None else value >= goal})

    add("every frame (clip): × InsightFace", ratio("clip, every frame", PEER), 1.5)
    add("every frame (clip): × naive", ratio("clip, every frame", NAIVE), 2.0)
    four = "10 min, 4 fps" if "10 min, 4 fps" in modes else "clip, 4 fps"
    add(f"4 fps ({four.split(',')[0]}): × InsightFace", ratio(four, PEER), 1.5)
    speed = sys_of(four).get("video_s_per_s", {})
    add(f"4 fps ({four.split(',')[0]}): × real time", speed.get("median") if speed.get("n") else None, 6.0)
    return out
