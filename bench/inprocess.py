"""Why peers timed inside the old harness's process ran slower than on their own.

    .venv/bin/python bench/inprocess.py [--video V] [--seconds 8] [--peer naive,insightface]

Each variant is a fresh process (bench/timing.py measures it); inside, the peer's
loop is timed alone after the set-up the variant names:

  own-venv        the peer's script in its own venv (CPU onnxruntime): the baseline
  our-venv        the same loop in faceid-jobs' venv (onnxruntime-gpu build on CPU)
  +import         after importing faceid_jobs (env vars, cv2 threads set at import?)
  +models         after load_models (our sessions and the shared arena exist, idle)
  +process        after process_sources on the same video (what the old harness did
                  before timing a peer: our threads and arena have run)

The loop's own wall and CPU seconds, the process's threads and the relevant
settings (OMP/OPENBLAS env, cv2.getNumThreads) are printed as one JSON object.
InsightFace is imported in faceid-jobs' venv from its own venv's site-packages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VARIANTS = ("our-venv", "+import", "+models", "+process")
ENV_KEYS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")


def child(peer: str, variant: str, video: str, weights: str) -> dict:
    """Inside the fresh process: set up as `variant` says, then time the peer's loop."""
    env_before = {k: os.environ.get(k) for k in ENV_KEYS}
    tmp = Path(tempfile.mkdtemp(prefix="inprocess-"))
    if variant in ("+import", "+models", "+process"):
        import faceid_jobs.cli.main  # noqa: F401  (everything `faceid-jobs` imports)
    if variant in ("+models", "+process"):
        from faceid_jobs.config import Settings
        from faceid_jobs.models import load_models

        settings = Settings(weights_dir=weights, device="cpu", store=str(tmp / "store"),
                            key_file=str(tmp / "k.key"), sample_fps=0.0)
        models = load_models(settings)
    if variant == "+process":
        from faceid_jobs.pipeline.process import process_sources
        from faceid_jobs.workspace import open_workspace

        ws = open_workspace(settings, create_key=True)
        process_sources([video], settings, ws, models)
    import cv2

    from bench.timing import clock

    if peer == "naive":
        from bench.peers.naive.naive import NaiveLoop

        loop = NaiveLoop(Path(weights), rect=True)
        run = lambda: loop.run(Path(video), 0.0, keep=False).faces  # noqa: E731
    else:
        import importlib.util

        sys.path.append(str(next((REPO / "bench/.venvs/insightface/lib").glob("python3*/site-packages"))))
        spec = importlib.util.spec_from_file_location("if_peer", REPO / "bench/peers/insightface/peer.py")
        peer_mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(peer_mod)
        app = peer_mod.face_analysis(Path(weights), tmp / "root")
        run = lambda: peer_mod.run(app, Path(video), 0.0)["faces"]  # noqa: E731
    threads = len(os.listdir("/proc/self/task"))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = clock()
    faces = run()
    wall = clock() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"peer": peer, "variant": variant, "loop_s": wall, "faces": faces,
            "loop_cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
            "threads_before_loop": threads, "cv2_threads": cv2.getNumThreads(),
            "env_before": env_before, "env_after": {k: os.environ.get(k) for k in ENV_KEYS},
            "onnxruntime": __import__("onnxruntime").__version__}


def main(argv: list[str] | None = None) -> int:
    from bench.common import DEFAULT_CLIP, default_weights_dir, log
    from bench.sections.context import CACHE
    from bench.synthetic import write_video
    from bench.timing import run_command

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--seconds", type=float, default=8.0, help="first S seconds of the video (every frame)")
    ap.add_argument("--peer", default="naive,insightface")
    ap.add_argument("--variants", default=",".join(("own-venv", *VARIANTS)))
    ap.add_argument("--child", nargs=2, metavar=("PEER", "VARIANT"), help=argparse.SUPPRESS)
    ap.add_argument("--weights-dir", default=str(default_weights_dir()))
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], str(a.video), a.weights_dir)))
        return 0
    short = CACHE / f"{a.video.stem}-first-{a.seconds:g}s.mp4"
    if not short.is_file():
        import cv2

        CACHE.mkdir(parents=True, exist_ok=True)
        fps = cv2.VideoCapture(str(a.video)).get(cv2.CAP_PROP_FPS)
        write_video(a.video, short, max_frames=round(a.seconds * fps))
    results = []
    for peer in a.peer.split(","):
        for variant in a.variants.split(","):
            if variant == "own-venv":
                script = {"naive": "bench/peers/naive/naive.py", "insightface": "bench/peers/insightface/peer.py"}
                cmd = [str(REPO / f"bench/.venvs/{peer}/bin/python"), str(REPO / script[peer]), str(short),
                       "--weights-dir", a.weights_dir, "--sample-fps", "0"]
            else:
                cmd = [sys.executable, __file__, "--video", str(short), "--weights-dir", a.weights_dir,
                       "--child", peer, variant]
            m = run_command(cmd, cwd=REPO)
            if not m.ok:
                log(f"inprocess: {peer} {variant} failed: {m.error_line()}")
                continue
            out = json.loads(m.stdout.strip().splitlines()[-1])
            if variant == "own-venv":
                out = {"peer": peer, "variant": variant, "loop_s": out["loop_s"], "faces": out["faces"],
                       "onnxruntime": out["onnxruntime"]}
            out |= {"process_wall_s": m.wall_s, "process_cpu_s": m.cpu_s, "peak_rss_mib": m.peak_rss_mib}
            log(f"inprocess: {peer:12s} {variant:9s} loop {out['loop_s']:.1f} s "
                f"(loop CPU {out.get('loop_cpu_s', float('nan')):.1f} s, threads {out.get('threads_before_loop')})")
            results.append(out)
    print(json.dumps({"video": str(short), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
