"""faceid-jobs benchmark harness: `make bench` (= `python bench/run.py`); see bench/README.md.

Sections (one module each under bench/sections/):

  footage   every system as a whole command from the shell: `faceid-jobs process … --json`
            (cold, fresh store, again), the naive loop and InsightFace FaceAnalysis each in
            its own venv; wall, CPU s, peak RSS, ratios run by run; the clip and 10 minutes
  memory    peak RSS of `faceid-jobs process` on the clip ×1 vs looped (flat in length?)
  batch     embedding and liveness faces/second against batch size (in-process)
  search    warm latency, recall and merge over 10k–1M vectors; the cold `faceid-jobs search`
  relabel   `faceid-jobs relabel` over a synthetic archive
  archive   re-run of `faceid-jobs process` over an unchanged archive of many tiny clips (local, S3 on moto)
  people    people discovery: 1M synthetic faces clustered from scratch + 10k incremental (`python -m
            bench.people scale` as a whole process), the Friends method × threshold sweep
  profile   where the time goes: each stage alone (in-process)

Results go to bench/results/<date>-<host>.json (and .md); the report goes to stdout.

    python bench/run.py                # everything (about 1 h 30 on 2 idle cores)
    python bench/run.py --quick        # footage + memory on the clip, 1 run (a few minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import traceback
import warnings
from datetime import datetime
from importlib import import_module
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DEFAULT_CLIP, REPO, cpu_busy, default_weights_dir, log, machine_facts, wait_idle
from bench.render import render
from bench.sections.context import Context
from bench.timing import clock

SECTIONS = ("footage", "memory", "batch", "search", "relabel", "archive", "people", "profile")
QUICK_SECTIONS = ("footage", "memory")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true",
                    help=f"sections {','.join(QUICK_SECTIONS)}, clip only, 1 run, memory with the clip looped 6x")
    ap.add_argument("--sections", default=None,
                    help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; --quick: "
                         f"{','.join(QUICK_SECTIONS)})")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure on the clip (default 3, --quick 1)")
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="footage (default: the Friends clip)")
    ap.add_argument("--fps", default="0,4", help="sampling rates, 0 = every frame (default 0,4)")
    ap.add_argument("--long-loops", type=int, default=23,
                    help="footage: the clip looped this many times as the long video (default 23 ≈ 10 min; "
                         "0: no long video)")
    ap.add_argument("--long-runs", type=int, default=1, help="runs per figure on the long video (default 1)")
    ap.add_argument("--long-peers-every-frame", action="store_true",
                    help="also the peers at every frame on the long video (about 45 minutes more)")
    ap.add_argument("--memory-loops", type=int, default=None,
                    help="memory: the long video's loops (default --long-loops; --quick 6)")
    ap.add_argument("--weights-dir", type=Path, default=None,
                    help="default: weights/files, else ../shared/weights")
    ap.add_argument("--device", default="cpu", help="faceid-jobs device (cpu, cuda, tensorrt)")
    ap.add_argument("--no-peer", action="store_true", help="skip InsightFace")
    ap.add_argument("--batch-sizes", default="1,8,32,128")
    ap.add_argument("--batch-faces", type=int, default=None, help="faces per batch-size figure (default 128)")
    ap.add_argument("--search-sizes", default=None,
                    help="vectors per index (default 10000,100000,1000000; --quick 10000)")
    ap.add_argument("--million", action="store_true", help="add a 1,000,000-vector index to --search-sizes")
    ap.add_argument("--people-faces", type=int, default=1_000_000,
                    help="people: synthetic faces clustered from scratch (default 1000000; --quick runs the "
                         "section only when --sections names it)")
    ap.add_argument("--out", type=Path, default=None,
                    help="result JSON (default bench/results/<date>-<host>.json)")
    ap.add_argument("--note", default=None,
                    help="a line printed in bold at the top of the report (e.g. 'preliminary, loaded machine')")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary stores")
    ap.add_argument("--merge", type=Path, default=None,
                    help="add this run's sections to an earlier result JSON (same machine)")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each section, wait up to this many seconds while other processes keep "
                         "the CPU busy (default 0: never wait, only record it)")
    a = ap.parse_args(argv)
    chosen = a.sections or ",".join(QUICK_SECTIONS if a.quick else SECTIONS)
    a.sections = [s.strip() for s in chosen.split(",") if s.strip()]
    unknown = sorted(set(a.sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    a.runs = a.runs or (1 if a.quick else 3)
    a.fps_list = [float(x) for x in a.fps.split(",") if x.strip()]
    a.batch_sizes = [int(x) for x in a.batch_sizes.split(",") if x.strip()]
    a.batch_faces = a.batch_faces or (64 if a.quick else 128)
    if a.search_sizes is None:
        a.search_sizes = "10000" if a.quick else "10000,100000,1000000"
    a.search_sizes = [int(x) for x in a.search_sizes.split(",") if x.strip()]
    if a.million and 1_000_000 not in a.search_sizes:
        a.search_sizes.append(1_000_000)
    a.memory_loops = a.memory_loops or (6 if a.quick else a.long_loops) or 23
    a.weights_dir = (a.weights_dir or default_weights_dir()).resolve()
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not args.clip.is_file():
        print(f"bench: footage {args.clip} not found (pass --clip)", file=sys.stderr)
        return 2
    if not args.weights_dir.is_dir():
        print(f"bench: weights folder {args.weights_dir} not found (pass --weights-dir)", file=sys.stderr)
        return 2

    def _stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # so the finally below removes the temp folder

    signal.signal(signal.SIGTERM, _stop)
    ctx = Context(args)
    started = clock()
    results: dict[str, Any] = {
        "schema": 2,  # 2: whole-command footage, peers in their own venvs
        "date": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "note": args.note,
        "runs": args.runs,
        "device": args.device,
        "gpu": _gpu_note(args.device),
        "machine": machine_facts(),
        "peers": peer_versions(),
        "weights_dir": str(args.weights_dir),
        "sections": {},
        "load_seconds": ctx.load_seconds,
    }
    out = args.out or REPO / "bench" / "results" / (
        f"{datetime.now():%Y-%m-%d}-{results['machine']['host']}.json")
    checkpoint = out.with_suffix(".partial.json")
    try:
        for name in SECTIONS:
            if name in args.sections:
                t0 = clock()
                busy = wait_idle(args.wait_idle) if args.wait_idle else cpu_busy()
                load_before = os.getloadavg()[0]
                if busy is not None and busy > 0.25:
                    log(f"{name}: warning: CPU {busy:.0%} busy with other processes before the section: "
                        "figures will be noisy")
                with contextlib.redirect_stdout(io.StringIO()) as captured:
                    try:
                        results["sections"][name] = import_module(f"bench.sections.{name}").run(ctx)
                    except Exception as exc:  # one broken section must not lose the others
                        log(f"{name}: FAILED: {type(exc).__name__}: {exc}")
                        results["sections"][name] = {
                            "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(limit=6),
                        }
                noise = captured.getvalue().strip()
                if noise:
                    log(f"{name}: suppressed stdout: {noise[:200]}")
                results.setdefault("section_seconds", {})[name] = clock() - t0
                results.setdefault("load_average_1min", {})[name] = {
                    "before": load_before, "after": os.getloadavg()[0], "cpu_busy_before": busy}
                # checkpoint: a run stopped later keeps the sections done so far
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                checkpoint.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
                log(f"{name}: done in {clock() - t0:.0f} s")
        if ctx._models:
            first = next(iter(ctx._models.values()))
            results["model_ids"] = first.ids
            results["providers_used"] = list(getattr(first, "providers", []))
    finally:
        ctx.cleanup()
    results["total_seconds"] = clock() - started
    if args.merge:
        results = _merge_results(json.loads(args.merge.read_text()), results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    checkpoint.unlink(missing_ok=True)
    report = render(results)
    out.with_suffix(".md").write_text(report)
    print(report)
    log(f"results: {out} (and .md), {results['total_seconds']:.0f} s in all")
    return 0


def _merge_results(earlier: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Sections of `now` added to (or replacing) those of `earlier`; both commands kept."""
    if earlier.get("machine", {}).get("host") != now["machine"]["host"]:
        raise SystemExit("bench: --merge: the earlier results come from another host")
    merged = dict(now)
    merged["sections"] = {**earlier.get("sections", {}), **now["sections"]}
    merged["commands"] = [*earlier.get("commands", [earlier.get("command")]), now["command"]]
    merged["command"] = " + ".join(c for c in merged["commands"] if c)
    merged["date"] = f"{earlier.get('date')} + {now['date']}"
    for key in ("section_seconds", "load_average_1min", "load_seconds"):
        merged[key] = {**earlier.get(key, {}), **now.get(key, {})}
    merged["total_seconds"] = earlier.get("total_seconds", 0.0) + now["total_seconds"]
    for key in ("settings", "model_ids", "providers_used"):
        merged.setdefault(key, earlier.get(key))
    return merged


def _gpu_note(device: str) -> str:
    if device in ("cuda", "tensorrt"):
        return f"measured with --device {device}"
    return "not measured in this run (CPU only; `--device cuda` on a machine with a GPU adds the GPU row)"


def peer_versions() -> dict[str, Any]:
    """The pinned requirements of each peer's venv (what `make bench-venvs` installs)."""
    out = {}
    for req in sorted((REPO / "bench" / "peers").glob("*/requirements*.txt")):
        pins = [x.strip() for x in req.read_text().splitlines() if x.strip() and not x.startswith("#")]
        out.setdefault(req.parent.name, []).extend(pins)
    return out


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    sys.exit(main())
