"""Throughput of `faceid-jobs process` by orchestrator, as whole commands typed in a shell.

Threads in process (the default), a local Dask cluster of 1 and 2 workers, and the Prefect
flow on its embedded server; fresh store per run, median wall of `--runs`. Chunks of
`--chunk-seconds` (default 5: the clip's 26 s make 6 chunks, enough for two workers to share;
one 30-s chunk would leave the second worker idle). Prints a Markdown table (docs/SCALING.md
section 1).

    python bench/scaling.py [--video FILE] [--runs 3] [--chunk-seconds 5] [--modes threads dask-1 dask-2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DEFAULT_CLIP
from bench.timing import run_command

MODES = {"threads": ("threads (in process)", []), "dask-1": ("--dask-local 1", ["--dask-local", "1"]),
         "dask-2": ("--dask-local 2", ["--dask-local", "2"]), "prefect": ("--prefect (embedded server)", ["--prefect"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-seconds", type=float, default=5.0)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--exe", default=str(Path(sys.executable).parent / "faceid-jobs"))
    args = parser.parse_args()
    cap = cv2.VideoCapture(str(args.video))
    seconds = cap.get(cv2.CAP_PROP_FRAME_COUNT) / cap.get(cv2.CAP_PROP_FPS)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FACEID_JOBS_"))}
        env |= {"FACEID_JOBS_KEY_FILE": f"{tmp}/key.json", "PREFECT_HOME": f"{tmp}/prefect",
                "FACEID_JOBS_STATE_DIR": f"{tmp}/state"}
        print(f"| how `process` ran | wall s (median of {args.runs}) | CPU s | peak RSS MiB | video s / wall s |")
        print("|---|---|---|---|---|")
        for mode, (name, extra) in enumerate(MODES[m] for m in args.modes):
            runs = []
            for i in range(args.runs):
                store = f"{tmp}/store-{mode}-{i}"  # fresh: a reused store would have nothing to do
                m = run_command([args.exe, "process", str(args.video), "--store", store, "-q", "--json",
                                 "--chunk-seconds", str(args.chunk_seconds), *extra], env=env)
                if not m.ok:
                    raise SystemExit(f"{name}: {m.error_line()}")
                runs.append(m)
            wall = statistics.median(r.wall_s for r in runs)
            cpu = statistics.median(r.cpu_s for r in runs)
            rss = max(r.peak_rss_mib for r in runs)
            print(f"| {name} | {wall:.2f} | {cpu:.1f} | {rss:.0f} | {seconds / wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
