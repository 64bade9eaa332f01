"""Archive re-check: `faceid-jobs process` over an archive it has already processed.

    faceid-jobs process FOLDER --store TMP --json      (first run, then again, unchanged)

Many tiny clips (1 s, a few 96×96 frames each, different content so each has
its own fingerprint) are processed once; then the re-run of the unchanged
archive is timed as a whole command, for 1 video and for all of them, so the
cost per unchanged video is (all − one) / (videos − 1) beyond the fixed
start-up (interpreter, models, store). The same on S3 (moto on 127.0.0.1,
when moto is installed): the archive in one bucket, the store in another.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import log, stats
from bench.sections.context import Context
from bench.timing import Measured, run_command

VIDEOS, QUICK_VIDEOS = 200, 50


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


def _process(ctx: Context, source: str, store: str, env: dict[str, str], *extra: str) -> tuple[Measured, dict]:
    a = ctx.args
    m = run_command([str(ctx.cli()), "process", source, "--store", store, "--json", "--sample-fps", "1",
                     "--device", a.device, "--weights-dir", str(a.weights_dir), *extra], env=env, timeout=3600)
    if not m.ok:
        raise RuntimeError(f"faceid-jobs process {source}: {m.error_line()}")
    return m, json.loads(m.stdout)


def _recheck(ctx: Context, one: str, every: str, count: int, store: str, env: dict[str, str],
             runs: int) -> dict[str, Any]:
    """First runs, then `runs` timed re-runs of one video and of all `count`."""
    first, summary = _process(ctx, every, store, env)
    _process(ctx, one, store, env)  # processed already: checks it is skipped
    walls_one, walls_all = [], []
    for _ in range(runs):
        m, again = _process(ctx, one, store, env)
        walls_one.append(m.wall_s)
        m, again = _process(ctx, every, store, env)
        walls_all.append(m.wall_s)
        if again["videos_unchanged"] != count:
            raise RuntimeError(f"re-run read {count - again['videos_unchanged']} of {count} unchanged videos")
    per_video = (min(walls_all) - min(walls_one)) / max(1, count - 1)
    return {"videos": count, "first_run_wall_s": first.wall_s, "first_run_videos": summary["videos"],
            "rerun_one_wall_s": stats(walls_one), "rerun_all_wall_s": stats(walls_all),
            "per_unchanged_video_ms": per_video * 1000.0}


@contextlib.contextmanager
def _moto() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def run(ctx: Context) -> dict[str, Any]:
    """Re-check of an unchanged archive: local folder, then S3 on the loopback server."""
    if ctx.cli() is None:
        return {"error": "faceid-jobs console script not installed"}
    count = QUICK_VIDEOS if ctx.args.quick else VIDEOS
    runs = max(1, ctx.args.runs)
    clips = make_clips(ctx.tmp / "archive", count)
    one = ctx.tmp / "archive-one"
    one.mkdir()
    os.link(clips[0], one / clips[0].name)  # the same file (inode) as in the whole archive
    log(f"archive: {count} tiny clips, processed once, then re-run unchanged ({runs} runs)")
    out: dict[str, Any] = {"local": _recheck(ctx, str(one), str(ctx.tmp / "archive"), count,
                                             str(ctx.tmp / "archive-store"), ctx.child_env(), runs)}
    try:
        import moto  # noqa: F401
    except ImportError:
        out["s3"] = {"error": "moto not installed"}
        return out
    from faceid_jobs.storage.s3 import make_client

    with _moto() as aws:
        client = make_client()
        for bucket in ("bench-footage", "bench-store"):
            client.create_bucket(Bucket=bucket)
        for clip in clips:
            client.upload_file(str(clip), "bench-footage", f"all/{clip.name}")
        client.upload_file(str(clips[0]), "bench-footage", f"one/{clips[0].name}")
        log(f"archive: the same {count} clips on S3 (moto, 127.0.0.1)")
        out["s3"] = _recheck(ctx, "s3://bench-footage/one/", "s3://bench-footage/all/", count,
                             "s3://bench-store/store", ctx.child_env(aws), runs)
    return out


if __name__ == "__main__":  # python -m bench.sections.archive [VIDEOS]: this section alone
    import argparse
    import sys

    from bench.common import default_weights_dir

    args = argparse.Namespace(quick=False, runs=2, device="cpu", weights_dir=default_weights_dir(), keep_temp=False)
    if len(sys.argv) > 1:
        VIDEOS = int(sys.argv[1])
    context = Context(args)
    try:
        print(json.dumps(run(context), indent=1))
    finally:
        context.cleanup()
