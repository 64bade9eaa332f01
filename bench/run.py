"""faceid-jobs benchmark harness: `make bench` (= `python bench/run.py`).

Measures, side by side on the same machine, the same model files and the same
frames (see bench/README.md for what each figure means):

  footage   video seconds per wall second on the Friends clip at every frame and
            at 4 fps: faceid-jobs `process_sources` vs the naive per-face loop
            (bench/naive.py) vs InsightFace FaceAnalysis (bench/peer_insightface.py)
  batch     embedding and liveness faces/second against batch size
  search    warm in-process latency p50/p95, cold `faceid-jobs search` wall time and
            peak RSS over 10k, 100k and 1M face-like vectors, next to bare FAISS
            searches (the floors); merge throughput next to AES-GCM and FAISS alone
  memory    peak RSS of `faceid-jobs process` on the clip vs the clip looped to 10 min
  profile   where the time goes: decode, detect, align, liveness, embed, alone

Every figure is the median of several runs with min and max; ratios are taken
run by run (runs of the systems compared are interleaved). Results go to
bench/results/<date>-<host>.json (and .md); the Markdown report goes to stdout.

    python bench/run.py                       # everything, about 35 minutes on 2 idle cores
    python bench/run.py --quick               # fewer runs, shorter inputs (about 6 minutes)
    python bench/run.py --sections search --million
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_CLIP,
    DEFAULT_PORTRAIT,
    REPO,
    RunMeter,
    cpu_busy,
    default_weights_dir,
    fmt,
    fmt_ratio,
    fmt_stat,
    log,
    machine_facts,
    md_table,
    percentiles,
    ratio_stats,
    stats,
    video_facts,
    wait_idle,
)

SECTIONS = ("footage", "batch", "search", "memory", "relabel", "profile")
FACEID = "faceid-jobs"
FACEID_NOLIVE = "faceid-jobs, liveness off"
FACEID_NOREUSE = "faceid-jobs, reuse off"
NAIVE = "naive loop"
PEER = "InsightFace FaceAnalysis"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true",
                    help="2 runs, every-frame on the first 8 s, 10k search, 2x loop for memory")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, --quick 2)")
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="footage (default: the Friends clip)")
    ap.add_argument("--clip-seconds", type=float, default=None,
                    help="every-frame runs on the first S seconds only (a re-encoded copy); "
                         "default: the whole clip (--quick: 8)")
    ap.add_argument("--fps", default="0,4", help="sampling rates for footage, 0 = every frame (default 0,4)")
    ap.add_argument("--weights-dir", type=Path, default=None,
                    help="default: weights/files, else ../shared/weights")
    ap.add_argument("--device", default="cpu", help="faceid-jobs device (cpu, cuda, tensorrt); peers follow")
    ap.add_argument("--no-peer", action="store_true", help="skip InsightFace")
    ap.add_argument("--no-liveness-row", action="store_true",
                    help="skip the 'faceid-jobs, liveness off' row (measured at sampled rates only "
                         "unless --full)")
    ap.add_argument("--full", action="store_true", help="also the liveness-off row at every frame")
    ap.add_argument("--batch-sizes", default="1,8,32,128")
    ap.add_argument("--batch-faces", type=int, default=None,
                    help="faces per batch-size measurement (default 128, --quick 64)")
    ap.add_argument("--search-sizes", default=None, help="vectors per index (default 10000,100000,1000000; "
                    "--quick 10000)")
    ap.add_argument("--million", action="store_true",
                    help="add a 1,000,000-vector index to search (already in the default sizes)")
    ap.add_argument("--loops", type=int, default=None,
                    help="memory: the clip looped this many times (default 23 ≈ 10 min, --quick 2)")
    ap.add_argument("--out", type=Path, default=None,
                    help="result JSON (default bench/results/<date>-<host>.json)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary stores and videos")
    ap.add_argument("--merge", type=Path, default=None,
                    help="add this run's sections to an earlier result JSON (same machine) and write the "
                         "combined report: run the sections one at a time on a busy machine")
    ap.add_argument("--retries", type=int, default=2,
                    help="repeat a footage run (up to this many times) when other processes took more than "
                         "--max-other-cpu of the CPU during it (default 2)")
    ap.add_argument("--max-other-cpu", type=float, default=0.10,
                    help="share of all cores other processes may use during a footage run (default 0.10)")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each section and each footage run, wait up to this many seconds while "
                         "other processes keep the CPU busy (default 0: never wait, only record it)")
    a = ap.parse_args(argv)
    a.sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = sorted(set(a.sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    a.runs = a.runs or (2 if a.quick else 3)
    if a.clip_seconds is None and a.quick:
        a.clip_seconds = 8.0
    a.fps_list = [float(x) for x in a.fps.split(",") if x.strip()]
    a.batch_sizes = [int(x) for x in a.batch_sizes.split(",") if x.strip()]
    a.batch_faces = a.batch_faces or (64 if a.quick else 128)
    if a.search_sizes is None:
        a.search_sizes = "10000" if a.quick else "10000,100000,1000000"
    a.search_sizes = [int(x) for x in a.search_sizes.split(",") if x.strip()]
    if a.million and 1_000_000 not in a.search_sizes:
        a.search_sizes.append(1_000_000)
    a.loops = a.loops or (2 if a.quick else 23)
    a.weights_dir = (a.weights_dir or default_weights_dir()).resolve()
    return a


class Context:
    """Shared state of one harness run: settings, loaded models, temp folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="faceid-bench-"))
        self._models: dict[bool, Any] = {}
        from faceid_jobs.config import Settings

        # records and shards are encrypted: one throwaway key file for every store of this run
        self.key_file = self.tmp / "bench.key"
        self.settings = Settings(weights_dir=str(args.weights_dir), device=args.device,
                                 store=str(self.tmp / "unused-store"), key_file=str(self.key_file))
        self.load_seconds: dict[str, float] = {}
        self.footage_results: dict[str, Any] = {}

    def models(self, liveness: bool = True):
        if liveness not in self._models:
            from faceid_jobs.models import load_models

            settings = self.settings if liveness else self.settings.replace(liveness=())
            t0 = time.perf_counter()
            self._models[liveness] = load_models(settings)
            self.load_seconds["faceid-jobs" + ("" if liveness else " (no liveness)")] = (
                time.perf_counter() - t0)
        return self._models[liveness]

    def workspace(self, root: Path, settings=None):
        """The store at `root` opened with the run's key (created on first use)."""
        from faceid_jobs.workspace import open_workspace

        settings = (settings or self.settings).replace(store=str(root))
        return open_workspace(settings, create_key=True)

    def child_env(self) -> dict[str, str]:
        """Settings for `faceid-jobs` children: the run's key file."""
        return {"FACEID_JOBS_KEY_FILE": str(self.key_file)}

    @property
    def providers(self) -> tuple[str, ...]:
        if self.args.device in ("cuda", "tensorrt"):
            return ("CUDAExecutionProvider", "CPUExecutionProvider")
        return ("CPUExecutionProvider",)

    def cli(self) -> Path | None:
        exe = Path(sys.executable).parent / "faceid-jobs"
        return exe if exe.is_file() else None

    def cleanup(self) -> None:
        if not self.args.keep_temp:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# footage throughput


def _store_faces(ws) -> dict[str, np.ndarray]:
    """frame_index, bbox, embedding, liveness of every record file in a workspace's store."""
    import pyarrow as pa

    from faceid_jobs.records import parquet_to_table

    columns = ["frame_index", "bbox", "embedding", "liveness"]
    tables = [parquet_to_table(ws.store.get(key), key, columns, ws.cipher)
              for key in sorted(ws.store.list("records/")) if key.endswith(".parquet")]
    if not tables:
        return {"frame_idx": np.zeros(0, np.int64), "boxes": np.zeros((0, 4), np.float32),
                "embeddings": np.zeros((0, 0), np.float32), "liveness": np.zeros(0, np.float32)}
    t = pa.concat_tables(tables)
    emb = t.column("embedding").combine_chunks()
    box = t.column("bbox").combine_chunks()
    live = t.column("liveness").to_numpy(zero_copy_only=False)
    return {
        "frame_idx": t.column("frame_index").to_numpy(),
        "boxes": np.asarray(box.values.to_numpy(zero_copy_only=False)).reshape(-1, 4),
        "embeddings": np.asarray(emb.values.to_numpy(zero_copy_only=False)).reshape(-1, emb.type.list_size),
        "liveness": np.asarray(live, np.float64),
    }


def _as_faces(res) -> dict[str, np.ndarray]:
    n = res.faces
    return {
        "frame_idx": np.asarray(res.frame_idx, np.int64),
        "boxes": np.asarray(res.boxes, np.float32).reshape(n, 4),
        "embeddings": np.asarray(res.embeddings, np.float32).reshape(n, -1) if n else np.zeros((0, 0)),
        "liveness": np.asarray(res.liveness, np.float64) if res.liveness else np.full(n, np.nan),
    }


def compare_faces(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """Face-by-face agreement on the frames both analysed (faces matched per frame by IoU)."""
    frames = sorted(set(ours["frame_idx"].tolist()) | set(ref["frame_idx"].tolist()))
    count_mismatch = 0
    box_diffs: list[float] = []
    cosines: list[float] = []
    live_diffs: list[float] = []
    unmatched = 0
    for f in frames:
        a = np.flatnonzero(ours["frame_idx"] == f)
        b = np.flatnonzero(ref["frame_idx"] == f)
        if len(a) != len(b):
            count_mismatch += 1
        used: set[int] = set()
        for i in a:
            best, best_iou = -1, 0.3
            for j in b:
                if j in used:
                    continue
                iou = _iou(ours["boxes"][i], ref["boxes"][j])
                if iou > best_iou:
                    best, best_iou = j, iou
            if best < 0:
                unmatched += 1
                continue
            used.add(best)
            box_diffs.append(float(np.abs(ours["boxes"][i] - ref["boxes"][best]).max()))
            if ours["embeddings"].size and ref["embeddings"].size:
                cosines.append(float(ours["embeddings"][i] @ ref["embeddings"][best]))
            la, lb = ours["liveness"][i], ref["liveness"][best]
            if np.isfinite(la) and np.isfinite(lb):
                live_diffs.append(abs(float(la) - float(lb)))
        unmatched += len(b) - len(used)
    return {
        "faces_ours": len(ours["frame_idx"]),
        "faces_ref": len(ref["frame_idx"]),
        "frames_with_different_face_count": count_mismatch,
        "unmatched_faces": unmatched,
        "matched_faces": len(box_diffs),
        "bbox_max_abs_diff_px": max(box_diffs) if box_diffs else None,
        "bbox_within_1px_share": (sum(d <= 1.0 for d in box_diffs) / len(box_diffs)) if box_diffs else None,
        "embedding_cosine_min": min(cosines) if cosines else None,
        "embedding_cosine_mean": float(np.mean(cosines)) if cosines else None,
        "liveness_max_abs_diff": max(live_diffs) if live_diffs else None,
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def section_footage(ctx: Context) -> dict[str, Any]:
    from bench import peer_insightface
    from bench.naive import NaiveLoop
    from bench.synthetic import write_video
    from faceid_jobs.pipeline.process import process_sources

    a = ctx.args
    clip = a.clip
    every_frame_video = clip
    if a.clip_seconds:
        facts = video_facts(clip)
        n = max(1, round(a.clip_seconds * facts["fps"]))
        every_frame_video = ctx.tmp / f"clip-first-{n}-frames.mp4"
        log(f"footage: writing the first {n} frames of {clip.name} to {every_frame_video.name}")
        write_video(clip, every_frame_video, max_frames=n)

    log("footage: loading models")
    ctx.models(True)
    t0 = time.perf_counter()
    naive = NaiveLoop(a.weights_dir, liveness=True, providers=ctx.providers,
                      det_size=ctx.settings.det_size, det_threshold=ctx.settings.det_threshold,
                      nms_threshold=ctx.settings.nms_threshold, min_face_px=ctx.settings.min_face_px,
                      rect=ctx.settings.det_shape == "fit")  # the same detector input as ours
    ctx.load_seconds["naive"] = time.perf_counter() - t0
    peer = None
    peer_missing = None if not a.no_peer else "skipped (--no-peer)"
    if peer_missing is None:
        peer_missing = peer_insightface.available()
    if peer_missing is None:
        t0 = time.perf_counter()
        peer = peer_insightface.InsightFacePeer(a.weights_dir, det_size=ctx.settings.det_size,
                                                tmp_root=ctx.tmp)
        ctx.load_seconds["insightface"] = time.perf_counter() - t0
    else:
        log(f"footage: no InsightFace row ({peer_missing}); `make bench-deps` installs it")

    def run_faceid(video: Path, fps: float, liveness: bool, reuse: bool = True) -> tuple[float, dict, dict]:
        store_root = ctx.tmp / f"store-{time.monotonic_ns()}"
        settings = ctx.settings.replace(sample_fps=fps, store=str(store_root))
        if not reuse:
            settings = settings.replace(reuse_embedding_s=0.0)
        if not liveness:
            settings = settings.replace(liveness=())
        ws = ctx.workspace(store_root, settings)  # opening the store is set-up, not processing
        t0 = time.perf_counter()
        summary = process_sources([str(video)], settings, ws, ctx.models(liveness))
        wall = time.perf_counter() - t0
        if summary.failures:
            raise RuntimeError(f"faceid-jobs failed: {[f.error for f in summary.failures]}")
        faces = _store_faces(ws)
        shutil.rmtree(store_root, ignore_errors=True)
        return wall, {"frames_analysed": summary.frames_sampled, "faces": summary.faces}, faces

    out: dict[str, Any] = {"modes": {}, "peer": None if peer else peer_missing,
                           "video_every_frame": video_facts(every_frame_video), "video": video_facts(clip)}
    for fps in a.fps_list:
        video = every_frame_video if fps == 0 else clip
        facts = video_facts(video)
        label = "every frame" if fps == 0 else f"{fps:g} fps"
        systems: list[tuple[str, Any]] = [
            (FACEID, lambda v=video, f=fps: run_faceid(v, f, True)),
            (NAIVE, lambda v=video, f=fps: _wrap(naive.run(v, f))),
        ]
        if peer is not None:
            systems.append((PEER, lambda v=video, f=fps: _wrap(peer.run(v, f))))
        if ctx.settings.reuse_embedding_s > 0:
            # every face embedded: the embedding agreement with the references, and what reuse buys
            systems.append((FACEID_NOREUSE, lambda v=video, f=fps: run_faceid(v, f, True, reuse=False)))
        if not a.no_liveness_row and (fps > 0 or a.full):
            systems.append((FACEID_NOLIVE, lambda v=video, f=fps: run_faceid(v, f, False)))
        walls: dict[str, list[float]] = {name: [] for name, _ in systems}
        cpu_s: dict[str, list[float]] = {}
        other: dict[str, list[float | None]] = {}
        discarded: dict[str, list[dict]] = {}
        info: dict[str, dict] = {}
        faces: dict[str, dict] = {}
        # warm-up: one pass each over a short stretch is not possible for every system
        # (whole videos only), so the first run of each is kept and the median absorbs it.
        for r in range(a.runs):
            k = r % len(systems)
            for name, fn in systems[k:] + systems[:k]:
                for attempt in range(1 + a.retries):
                    if a.wait_idle:
                        wait_idle(a.wait_idle)
                    log(f"footage {label}: run {r + 1}/{a.runs}: {name}")
                    with RunMeter() as meter:
                        wall, meta, found = fn()
                    share = meter.other_share
                    if share is not None and share > a.max_other_cpu and attempt < a.retries:
                        log(f"  other processes took {share:.0%} of the CPU during that run: repeating it")
                        discarded.setdefault(name, []).append({"wall_s": wall, "other_cpu_share": share})
                        continue
                    break
                walls[name].append(wall)
                cpu_s.setdefault(name, []).append(meter.cpu)
                other.setdefault(name, []).append(share)
                info.setdefault(name, meta)
                faces.setdefault(name, found)
        mode: dict[str, Any] = {"video_seconds": facts["seconds"], "frames": facts["frames"],
                                "video": facts["path"], "sample_fps": fps, "systems": {}}
        for name, _ in systems:
            thr = [facts["seconds"] / w for w in walls[name]]
            mode["systems"][name] = {
                "wall_s": stats(walls[name]),
                "wall_s_runs": walls[name],
                "video_s_per_s": stats(thr),
                "frames_analysed": info[name]["frames_analysed"],
                "faces": info[name]["faces"],
                "process_cpu_s": stats(cpu_s.get(name, [])),
                "other_processes_cpu_share_runs": other.get(name, []),
                "discarded_runs": discarded.get(name, []),
            }
        for ref in (NAIVE, PEER):
            if ref not in walls:
                continue
            for name in (FACEID, FACEID_NOREUSE, FACEID_NOLIVE):
                if name in walls:
                    # throughput ratio = ref wall / our wall, paired run by run
                    mode["systems"][name][f"speedup_vs_{ref}"] = ratio_stats(walls[ref], walls[name])
        mode["agreement_vs_naive"] = compare_faces(faces[FACEID], faces[NAIVE])
        if PEER in faces:
            mode["agreement_vs_insightface"] = compare_faces(faces[FACEID], faces[PEER])
        if FACEID_NOREUSE in faces:
            mode["agreement_reuse_off_vs_naive"] = compare_faces(faces[FACEID_NOREUSE], faces[NAIVE])
            if PEER in faces:
                mode["agreement_reuse_off_vs_insightface"] = compare_faces(faces[FACEID_NOREUSE], faces[PEER])
        out["modes"][label] = mode
    if peer is not None:
        peer.close()
    ctx.footage_results = out
    return out


def _wrap(res) -> tuple[float, dict, dict]:
    return res.seconds, {"frames_analysed": res.frames_analysed, "faces": res.faces}, _as_faces(res)


# ---------------------------------------------------------------------------------------------
# batch size


def _clip_crops(ctx: Context, n_faces: int) -> tuple[np.ndarray, list[np.ndarray], list[tuple]]:
    """Aligned crops, per-model liveness crops, and (frame, boxes) pairs of `n_faces` faces."""
    from faceid_jobs.models.align import align_faces
    from faceid_jobs.video import iter_chunk_frames, probe_video
    from faceid_jobs.video.chunks import Chunk

    models = ctx.models(True)
    info = probe_video(ctx.args.clip)
    aligned: list[np.ndarray] = []
    live: list[list[np.ndarray]] = [[] for _ in models.liveness.models] if models.liveness else []
    frames: list[tuple] = []
    total = 0
    for idx, image in iter_chunk_frames(ctx.args.clip, Chunk(0, 0, info.frame_count), info.fps, 3.0,
                                        is_last=True):
        faces = models.detector.detect(image, frame_idx=idx)
        if not len(faces):
            continue
        aligned.append(align_faces(image, faces.kps))
        for parts, m in zip(live, models.liveness.models if models.liveness else [], strict=True):
            parts.append(m.crops(image, faces.xyxy))
        frames.append((image, faces.xyxy))
        total += len(faces)
        if total >= n_faces:
            break
    crops = np.concatenate(aligned)
    reps = -(-n_faces // len(crops))
    crops = np.concatenate([crops] * reps)[:n_faces]
    live_crops = [np.concatenate([np.concatenate(p)] * reps)[:n_faces] for p in live]
    return crops, live_crops, frames


def section_batch(ctx: Context) -> dict[str, Any]:
    a = ctx.args
    models = ctx.models(True)
    log(f"batch: collecting {a.batch_faces} faces from the clip")
    crops, live_crops, _ = _clip_crops(ctx, a.batch_faces)
    emb = models.embedder
    out: dict[str, Any] = {"faces": len(crops), "embed": {}, "liveness": {}, "embed_raw_session": {},
                           "liveness_api": None}
    lv = models.liveness
    has_score_crops = lv is not None and hasattr(lv, "score_crops")
    out["liveness_api"] = ("LivenessFusion.score_crops" if has_score_crops
                           else "raw MiniFASNet sessions (score_crops not in the library yet)")
    emb.embed(crops[:4], batch_size=4)  # warm-up
    for b in a.batch_sizes:
        log(f"batch: size {b}")
        rates, raw_rates, live_rates = [], [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            emb.embed(crops, batch_size=b)
            rates.append(len(crops) / (time.perf_counter() - t0))
            # the floor: the graph alone on ready blobs
            blob = ((crops[..., ::-1].astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
            t0 = time.perf_counter()
            for s in range(0, len(blob), b):
                emb.session.run([emb.output_name], {emb.input_name: blob[s:s + b]})
            raw_rates.append(len(crops) / (time.perf_counter() - t0))
            if lv is not None:
                t0 = time.perf_counter()
                if has_score_crops:
                    lv.score_crops(live_crops, batch_size=b)
                else:
                    for m, lc in zip(lv.models, live_crops, strict=True):
                        for s in range(0, len(lc), b):
                            x = lc[s:s + b].transpose(0, 3, 1, 2).astype(np.float32)
                            m.session.run([m.output_name], {m.input_name: x})
                live_rates.append(len(crops) / (time.perf_counter() - t0))
        out["embed"][str(b)] = stats(rates)
        out["embed_raw_session"][str(b)] = stats(raw_rates)
        if live_rates:
            out["liveness"][str(b)] = stats(live_rates)
    return out


# ---------------------------------------------------------------------------------------------
# search

SEARCH_K = 20  # top-k of the latency figures (the CLI's default)
ABOVE_K = 128  # k of the "above threshold found" figure: more than the most faces an identity has (100)
SEARCH_THRESHOLD = 0.4  # the CLI's default threshold
NPROBE_SWEEP = (32, 64, 128, 256)


def _run_child(cmd: list[str], extra_env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit code, stdout or the error's last line) of one child process.

    The command runs under bench/rss_launcher.py, so its peak RSS is its own (see there).
    """
    # the children get the harness's settings, not whatever FACEID_JOBS_* the shell has
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | (extra_env or {})
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = Path(f.name)
    try:
        launcher = [sys.executable, str(REPO / "bench" / "rss_launcher.py"), str(result_path)]
        proc = subprocess.run(launcher + cmd, capture_output=True, env=env, check=False)
        try:
            facts = json.loads(result_path.read_text())
        except (OSError, ValueError):
            facts = {"maxrss_kib": float("nan"), "wall_s": float("nan"), "returncode": proc.returncode}
    finally:
        result_path.unlink(missing_ok=True)
    wall, peak, code = facts["wall_s"], facts["maxrss_kib"] / 1024.0, facts["returncode"]
    if code != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()
        last = tail[-1] if tail else f"exit {code}"
        log(f"child failed ({code}): {' '.join(cmd[:3])} ...: {last}")
        return wall, peak, code, last
    return wall, peak, 0, proc.stdout.decode(errors="replace")


def _search_queries(syn, count: int, seed: int) -> np.ndarray:
    """Queries for a synthetic store: fresh faces of stored identities ("faces" data), or stored
    vectors plus noise, cosine ≈ 0.78 with their source ("uniform" data)."""
    from bench.synthetic import identity_queries

    if syn.faces is not None:
        return identity_queries(syn.faces, count, seed)[0]
    rng = np.random.default_rng(seed)
    vecs = syn.vectors
    queries = vecs[rng.integers(0, len(vecs), count)] + rng.standard_normal(
        (count, vecs.shape[1])).astype(np.float32) * 0.035
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def _exact_truth(vecs: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-ABOVE_K (scores, vector ids) of every query (faiss.knn: no copy of the vectors)."""
    import faiss

    return faiss.knn(queries, vecs, ABOVE_K, metric=faiss.METRIC_INNER_PRODUCT)


def _quality(found: np.ndarray, truth_scores: np.ndarray, truth_ids: np.ndarray) -> dict[str, float]:
    """recall@20 vs exact and the share of above-threshold vectors found, from top-ABOVE_K vector ids.

    `found` (q, ABOVE_K) holds the searched index's results as vector ids (-1: none), best first.
    """
    recall, above_found, above_n, capped = [], [], [], 0
    for got, ts, ti in zip(found, truth_scores, truth_ids, strict=True):
        recall.append(len(set(got[:SEARCH_K].tolist()) & set(ti[:SEARCH_K].tolist())) / SEARCH_K)
        above = set(ti[ts >= SEARCH_THRESHOLD].tolist())
        capped += int(ts[-1] >= SEARCH_THRESHOLD)
        if above:
            above_found.append(len(above & set(got.tolist())) / len(above))
            above_n.append(len(above))
    return {"recall_at_20_vs_exact": float(np.mean(recall)),
            "above_threshold_found_share": float(np.mean(above_found)) if above_found else float("nan"),
            "above_threshold_mean_count": float(np.mean(above_n)) if above_n else 0.0,
            "queries_with_more_than_k_above": capped}


def _merge_floors(ws, vecs: np.ndarray, shards: list, params, runs: int) -> dict[str, Any]:
    """What a merge cannot beat: decrypting the record files, FAISS building the same kinds of
    index over the same vectors (train + add, and add alone into the trained index), and AES-GCM
    over as many bytes as the shards hold (cryptography's AESGCM, 1 MiB segments)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from faceid_jobs.index.shard import build_faiss
    from faceid_jobs.records import parquet_to_table

    out: dict[str, Any] = {}
    sources = sorted({src for s in shards for src in s.sources})
    t0 = time.perf_counter()
    for key in sources:
        parquet_to_table(ws.store.get(key), key, cipher=ws.cipher)
    out["read_records_s"] = time.perf_counter() - t0
    build, add, built = 0.0, 0.0, []
    start = 0
    for s in shards:  # the same shard sizes, so the same kinds of index
        part = np.ascontiguousarray(vecs[start:start + s.vectors])
        start += s.vectors
        t0 = time.perf_counter()
        index, kind = build_faiss(part, params)
        build += time.perf_counter() - t0
        index.reset()  # keeps the training: what is left is FAISS `add`
        t0 = time.perf_counter()
        index.add(part)
        add += time.perf_counter() - t0
        built.append((index, kind))
    out["faiss_build_s"] = build
    out["faiss_add_s"] = add
    out["faiss_kinds"] = sorted({k for _, k in built})
    total = sum(s.size for s in shards)
    aead = AESGCM(AESGCM.generate_key(256))
    segment = os.urandom(1 << 20)
    aes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(-(-total // len(segment))):
            aead.encrypt(i.to_bytes(12, "big"), segment, b"")
        aes.append(time.perf_counter() - t0)
    out["aes_gcm_bytes"] = total
    out["aes_gcm_s"] = min(aes)
    out["aes_gcm_mib_per_s"] = total / 2**20 / min(aes)
    out["indexes"] = built  # the in-memory indexes, for the same-kind search floor; dropped by the caller
    return out


def _search_rows(index, queries: np.ndarray, to_vec: np.ndarray, k: int) -> np.ndarray:
    """The index's top-k of each query as synthetic vector ids (-1 for none)."""
    _, rows = index.search(queries, k)
    return np.where(rows >= 0, to_vec[np.maximum(rows, 0)], -1)


def _floor_search(indexes: list, q: np.ndarray, k: int) -> np.ndarray:
    """Top-k over several bare FAISS indexes, searched one after another like the shards."""
    scores = np.concatenate([idx.search(q, min(k, idx.ntotal))[0] for idx in indexes], axis=1)
    return np.sort(scores, axis=1)[:, ::-1][:, :k]


def _ivf_in_memory(data: str, n: int, params, seed: int = 11) -> dict[str, Any]:
    """An IVF shard over n vectors built in memory whatever exact_max says: recall on `data`."""
    from bench.synthetic import SyntheticRecords, face_vectors, unit_vectors
    from faceid_jobs.index.shard import IndexParams, build_faiss

    faces = face_vectors(n, 512, seed) if data == "faces" else None
    vecs = faces.vectors if faces is not None else unit_vectors(n, 512, seed)
    syn = SyntheticRecords(vecs, [], 0.0, 0, 0, faces)
    queries = _search_queries(syn, 300, seed + 1)
    t0 = time.perf_counter()
    index, kind = build_faiss(vecs, IndexParams(exact_max=0, ivf_codec=params.ivf_codec, nprobe=params.nprobe))
    build_s = time.perf_counter() - t0
    ts, ti = _exact_truth(vecs, queries)
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None], SEARCH_K)
        lat.append(time.perf_counter() - t0)
    found = index.search(queries, ABOVE_K)[1]
    out = {"data": data, "vectors": n, "kind": kind, "nprobe": params.nprobe, "build_s": build_s,
           "search": percentiles(lat), **_quality(found, ts, ti)}
    del index
    return out


def section_search(ctx: Context) -> dict[str, Any]:
    import faiss
    import pyarrow as pa
    import pyarrow.compute as pc

    from bench.synthetic import make_index_store
    from faceid_jobs.index import index_params, load_manifest, merge_index, open_index
    from faceid_jobs.models.runtime import file_sha256
    from faceid_jobs.photo import PhotoFace
    from faceid_jobs.search.query import Query, search_index

    a = ctx.args
    embedder_id = _embedder_id(ctx, file_sha256)
    params = index_params(ctx.settings)
    out: dict[str, Any] = {
        "embedder_id": embedder_id, "faiss_omp_threads": faiss.omp_get_max_threads(),
        "index_params": {"exact_max": params.exact_max, "ivf_codec": params.ivf_codec,
                         "nprobe": params.nprobe, "shard_max": params.shard_max},
        "data": "faces: identities of 20-100 faces, cos(face, centre) 0.75; queries are fresh faces of "
                "stored identities (bench/synthetic.py face_vectors)",
        "k": SEARCH_K, "above_threshold_k": ABOVE_K, "threshold": SEARCH_THRESHOLD,
        "sizes": {},
    }
    cli = ctx.cli()
    if cli is None:
        out["cli"] = "not measured: .venv/bin/faceid-jobs does not exist (package not installed)"
    for n in a.search_sizes:
        videos = 4 if n <= 10_000 else (10 if n <= 100_000 else 20)
        root = ctx.tmp / f"search-{n}"
        ws = ctx.workspace(root)
        log(f"search: writing {n:,} synthetic face records in {videos} videos")
        # big stores in bigger record files: fewer files (and data keys) to write and merge
        syn = make_index_store(ws, n, embedder_id=embedder_id, videos=videos,
                               rows_per_chunk=5000 if n <= 100_000 else 20_000)
        log(f"search: merging {n:,} vectors into encrypted shards")
        t0 = time.perf_counter()
        merged = merge_index(ws.store, ws.keys, embedder_id, cipher=ws.cipher, params=params)
        merge_s = time.perf_counter() - t0
        shards = list(load_manifest(ws.store, ws.keys).shards)
        log(f"search: merge floors over {n:,} vectors (records, FAISS build, AES-GCM)")
        floors = _merge_floors(ws, syn.vectors, shards, params, a.runs)
        same_kind = [idx for idx, _ in floors.pop("indexes")]
        vecs = syn.vectors
        q_count = 300 if n <= 100_000 else 100
        queries = _search_queries(syn, q_count, seed=3)
        truth_scores, truth_ids = _exact_truth(vecs, queries)

        load_s = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            index = open_index(ws.store, ws.keys, nprobe=params.nprobe)
            load_s.append(time.perf_counter() - t0)
        # index rows → the synthetic vector they hold (the merge orders rows by record file)
        found_at = pc.index_in(index.meta.column("face_id"), value_set=pa.array(syn.face_ids))
        assert found_at.null_count == 0, "index rows that the synthetic store did not write"
        to_vec = np.asarray(found_at.to_numpy(), np.int64)
        qf = PhotoFace(photo="synthetic", bbox=(0.0, 0.0, 1.0, 1.0), det_score=1.0, face_index=0,
                       faces_in_photo=1)
        floor = faiss.IndexFlatIP(vecs.shape[1])
        floor.add(vecs)
        for q in queries[:3]:  # warm-up
            index.search(q[None], SEARCH_K)
            floor.search(q[None], SEARCH_K)
            _floor_search(same_kind, q[None], SEARCH_K)
        raw_lat, full_lat, floor_lat, kind_lat, hits = [], [], [], [], []
        floor_queries = q_count if n <= 100_000 else 30  # exact search at 1M: ~0.1-0.3 s a query
        for i, q in enumerate(queries):
            if i < floor_queries:
                t0 = time.perf_counter()
                floor.search(q[None], SEARCH_K)
                floor_lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _floor_search(same_kind, q[None], SEARCH_K)
            kind_lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.search(q[None], SEARCH_K)
            raw_lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = search_index(Query(qf, q, embedder_id), index, top_k=SEARCH_K, threshold=SEARCH_THRESHOLD)
            full_lat.append(time.perf_counter() - t0)
            hits.append(len(res.hits))
        del floor
        quality = _quality(_search_rows(index, queries, to_vec, ABOVE_K), truth_scores, truth_ids)
        kinds = sorted({s.kind for s in shards})
        sweep: dict[str, Any] = {}
        if any(k != "flat" for k in kinds):
            for nprobe in NPROBE_SWEEP:
                probe = index if nprobe == params.nprobe else open_index(ws.store, ws.keys, nprobe=nprobe)
                lat = []
                for q in queries:
                    t0 = time.perf_counter()
                    probe.search(q[None], SEARCH_K)
                    lat.append(time.perf_counter() - t0)
                sweep[str(nprobe)] = {"index_search": percentiles(lat),
                                      **_quality(_search_rows(probe, queries, to_vec, ABOVE_K), truth_scores,
                                                 truth_ids)}
                del probe
        merge = {"merge_s": merge_s, "merge_vectors_per_s": n / merge_s if merge_s else None, **floors}
        for key in ("read_records", "faiss_build", "faiss_add", "aes_gcm"):
            merge[f"{key}_vectors_per_s"] = n / floors[f"{key}_s"] if floors[f"{key}_s"] else None
        entry: dict[str, Any] = {
            "vectors": n, "videos": videos, "record_files": syn.chunks, "data": syn.data,
            "write_records_s": syn.write_seconds,
            "merge_s": merge_s, "merge_vectors_per_s": merge["merge_vectors_per_s"], "merge": merge,
            "shards": len(shards), "shard_kinds": kinds, "shard_mib": sum(s.size for s in shards) / 2**20,
            "index_version": getattr(merged, "version", None),
            "store_mib": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20,
            "open_index_s": stats(load_s),
            "faiss_floor": percentiles(floor_lat),
            "faiss_same_kind": percentiles(kind_lat),
            "index_search": percentiles(raw_lat),
            "search_index_with_hits": percentiles(full_lat),
            **quality,
            "nprobe_sweep": sweep,
            "mean_hits": float(np.mean(hits)),
            "queries": q_count,
        }
        del index, same_kind, syn, vecs, to_vec
        if cli is not None and DEFAULT_PORTRAIT.is_file():
            walls, rss = [], []
            cmd = [str(cli), "search", str(DEFAULT_PORTRAIT), "--store", str(root), "--json",
                   "--device", a.device, "--weights-dir", str(a.weights_dir)]
            for r in range(a.runs):
                log(f"search: cold CLI over {n:,} vectors, run {r + 1}/{a.runs}")
                wall, peak, rc, text = _run_child(cmd, ctx.child_env())
                if rc == 0:
                    walls.append(wall)
                    rss.append(peak)
                else:
                    entry["cli_error"] = text
                    break
            entry["cli_cold_wall_s"] = stats(walls)
            entry["cli_peak_rss_mib"] = stats(rss)
        out["sizes"][str(n)] = entry
        shutil.rmtree(root, ignore_errors=True)
    if any(n >= 100_000 for n in a.search_sizes):
        # IVF on structureless vectors is the worst case; faces data beside it, same size and build
        log("search: IVF built in memory over 100,000 uniform and 100,000 face-like vectors")
        out["ivf_in_memory"] = [_ivf_in_memory(d, 100_000, params) for d in ("uniform", "faces")]
    return out


def _embedder_id(ctx: Context, file_sha256) -> str:
    """The id the CLI will check the index against: the configured embedder file's."""
    if ctx._models:
        return next(iter(ctx._models.values())).ids["embedder"]
    names = ctx.settings.embedder
    names = (names,) if isinstance(names, str) else names
    for name in names:
        path = Path(ctx.settings.resolved_weights_dir()) / name
        if path.is_file():
            return file_sha256(path)[:12]
    return ctx.models(True).ids["embedder"]


# ---------------------------------------------------------------------------------------------
# memory


def section_memory(ctx: Context) -> dict[str, Any]:
    from bench.synthetic import write_video

    a = ctx.args
    one = ctx.tmp / "clip-x1.mp4"
    many = ctx.tmp / f"clip-x{a.loops}.mp4"
    log("memory: re-encoding the clip 1× and looped")
    write_video(a.clip, one, loops=1)
    write_video(a.clip, many, loops=a.loops)
    cli = ctx.cli()
    runner = "faceid-jobs process (console script)" if cli else "bench/child_process.py (no console script)"
    videos = [("original clip (H.264)", a.clip, {}), ("clip re-encoded ×1 (MPEG-4)", one, {}),
              (f"clip looped ×{a.loops} (MPEG-4)", many, {})]
    if not a.quick:
        # what batch size costs in onnxruntime arena memory: the clip with batches of 64
        videos.append(("clip re-encoded ×1, embed/liveness batch 64", one,
                       {"FACEID_JOBS_EMBED_BATCH": "64", "FACEID_JOBS_LIVENESS_BATCH": "64"}))
        # one chunk at a time (each running chunk holds a model set, a decoder and its queue)
        videos.append((f"clip looped ×{a.loops}, workers 1", many, {"FACEID_JOBS_WORKERS": "1"}))
    out: dict[str, Any] = {"runner": runner, "sample_fps": 4.0, "videos": {}}
    for label, path, extra_env in videos:
        facts = video_facts(path)
        rss, walls = [], []
        # peak RSS repeats to within 1 % run to run: one run per video unless --runs says more
        for r in range(1 if a.runs <= 3 else 2):
            store = ctx.tmp / f"mem-store-{time.monotonic_ns()}"
            if cli:
                cmd = [str(cli), "process", str(path), "--store", str(store), "--sample-fps", "4",
                       "--json", "--device", a.device, "--weights-dir", str(a.weights_dir)]
            else:
                cmd = [sys.executable, str(REPO / "bench" / "child_process.py"), str(path), "--store",
                       str(store), "--sample-fps", "4", "--device", a.device,
                       "--weights-dir", str(a.weights_dir)]
            log(f"memory: {label}, run {r + 1}")
            wall, peak, rc, text = _run_child(cmd, ctx.child_env() | extra_env)
            shutil.rmtree(store, ignore_errors=True)
            if rc != 0:
                out.setdefault("errors", {})[label] = text
                break
            rss.append(peak)
            walls.append(wall)
        out["videos"][label] = {"video_seconds": facts["seconds"], "frames": facts["frames"],
                                "peak_rss_mib": stats(rss), "wall_s": stats(walls),
                                "video_s_per_s": stats([facts["seconds"] / w for w in walls])}
    base = out["videos"][videos[1][0]]["peak_rss_mib"]["median"]
    long = out["videos"][videos[2][0]]["peak_rss_mib"]["median"]
    out["growth_long_vs_short"] = long / base if base else None
    return out


# ---------------------------------------------------------------------------------------------
# profile: the stages alone


def section_relabel(ctx: Context) -> dict[str, Any]:
    """`faceid-jobs relabel` over a synthetic archive (bench/relabel.py, one fresh store per run)."""
    a = ctx.args
    faces, identities = (20_000, 200) if a.quick else (100_000, 1000)
    runs = []
    for r in range(a.runs):
        log(f"relabel: {faces:,} stored faces against {identities:,} identities, run {r + 1}/{a.runs}")
        proc = subprocess.run([sys.executable, str(REPO / "bench" / "relabel.py"), "--faces", str(faces),
                               "--identities", str(identities), "--weights-dir", str(a.weights_dir)],
                              capture_output=True, text=True, check=False,
                              env={k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")})
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()
            return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
        runs.append(json.loads(proc.stdout))
    return {
        "faces": faces, "identities": identities, "record_files": runs[0]["record_files"],
        "labelled_faces": runs[0]["relabel"]["labelled_faces"],
        "faces_per_s": stats([x["relabel"]["faces_per_second"] for x in runs]),
        "command_wall_s": stats([x["command_wall_seconds"] for x in runs]),
    }


def section_profile(ctx: Context) -> dict[str, Any]:
    import cv2
    import onnxruntime as ort

    from faceid_jobs.models.align import align_faces
    from faceid_jobs.video import iter_chunk_frames, probe_video
    from faceid_jobs.video.chunks import Chunk

    a = ctx.args
    models = ctx.models(True)
    clip = a.clip
    info = probe_video(clip)
    limit = info.frame_count
    if a.clip_seconds:
        limit = min(limit, round(a.clip_seconds * info.fps))
    out: dict[str, Any] = {"frames": limit, "stages": {}, "experiments": {}}

    # decode
    log("profile: decode")
    reads, grabs = [], []
    for _ in range(a.runs):
        cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
        t0 = time.perf_counter()
        for _ in range(limit):
            cap.read()
        reads.append((time.perf_counter() - t0) / limit * 1000)
        cap.release()
        cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
        t0 = time.perf_counter()
        for _ in range(limit):
            cap.grab()
        grabs.append((time.perf_counter() - t0) / limit * 1000)
        cap.release()
    out["stages"]["decode read() ms/frame"] = stats(reads)
    out["stages"]["decode grab() ms/frame"] = stats(grabs)
    for fps in (0.0, 4.0):
        ts = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            n = sum(1 for _ in iter_chunk_frames(clip, Chunk(0, 0, limit), info.fps, fps, is_last=True))
            ts.append((time.perf_counter() - t0) / limit * 1000)
        out["stages"][f"iter_chunk_frames @{fps:g} fps ms/video frame"] = stats(ts)
        out["stages"][f"iter_chunk_frames @{fps:g} fps frames yielded"] = n

    # per stage on real frames (every 2nd frame, sequential, no overlap)
    log("profile: detect / align / liveness / embed")
    frames = [img for i, img in iter_chunk_frames(clip, Chunk(0, 0, limit), info.fps, 0.0, is_last=True)
              if i % 2 == 0][:120]
    det_ms, align_ms = [], []
    crops_all, faces_all = [], []
    for img in frames:
        t0 = time.perf_counter()
        faces = models.detector.detect(img)
        det_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        crops = align_faces(img, faces.kps)
        if len(faces):
            align_ms.append((time.perf_counter() - t0) * 1000 / len(faces))
        crops_all.append(crops)
        faces_all.append((img, faces))
    n_faces = sum(len(f) for _, f in faces_all)
    crops = np.concatenate(crops_all)
    out["faces_per_frame"] = n_faces / max(1, len(frames))
    out["stages"]["detect ms/frame"] = stats(det_ms)
    out["stages"]["align ms/face"] = stats(align_ms)
    emb_ms = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        models.embedder.embed(crops, batch_size=ctx.settings.embed_batch)
        emb_ms.append((time.perf_counter() - t0) * 1000 / len(crops))
    out["stages"][f"embed ms/face (batch {ctx.settings.embed_batch})"] = stats(emb_ms)
    if models.liveness is not None:
        crop_ms, live_ms = [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            parts = [[m.crops(img, f.xyxy) for img, f in faces_all if len(f)] for m in models.liveness.models]
            crop_ms.append((time.perf_counter() - t0) * 1000 / n_faces)
            stacked = [np.concatenate(p) for p in parts]
            t0 = time.perf_counter()
            if hasattr(models.liveness, "score_crops"):
                models.liveness.score_crops(stacked, batch_size=ctx.settings.liveness_batch)
            else:
                for m, lc in zip(models.liveness.models, stacked, strict=True):
                    for s in range(0, len(lc), ctx.settings.liveness_batch):
                        x = lc[s:s + ctx.settings.liveness_batch].transpose(0, 3, 1, 2).astype(np.float32)
                        m.session.run([m.output_name], {m.input_name: x})
            live_ms.append((time.perf_counter() - t0) * 1000 / n_faces)
        out["stages"]["liveness crops ms/face (2 models)"] = stats(crop_ms)
        out["stages"][f"liveness inference ms/face (2 models, batch {ctx.settings.liveness_batch})"] = (
            stats(live_ms))
    fpf = out["faces_per_frame"]
    st = out["stages"]
    embed_face = st[f"embed ms/face (batch {ctx.settings.embed_batch})"]["median"]
    live_face = 0.0
    if models.liveness is not None:
        live_face = (st["liveness crops ms/face (2 models)"]["median"]
                     + st[f"liveness inference ms/face (2 models, batch {ctx.settings.liveness_batch})"]
                     ["median"])
    per_face = st["align ms/face"]["median"] + embed_face + live_face
    seq = st["decode read() ms/frame"]["median"] + st["detect ms/frame"]["median"] + fpf * per_face
    out["sequential_ms_per_frame_at_every_frame"] = seq
    out["sequential_video_s_per_s_at_every_frame"] = 1000.0 / seq / info.fps
    out["share_at_every_frame"] = {
        "decode": st["decode read() ms/frame"]["median"] / seq,
        "detect": st["detect ms/frame"]["median"] / seq,
        "align": fpf * st["align ms/face"]["median"] / seq,
        "liveness": fpf * live_face / seq,
        "embed": fpf * embed_face / seq,
    }

    # the pipeline's main thread under cProfile (decode runs in the prefetch thread: time the
    # main thread spends in queue.get is time inference waited for frames)
    log("profile: cProfile of analyse_chunk at every frame")
    out["analyse_chunk_cprofile"] = _cprofile_chunk(ctx, info, min(limit, 240))

    # experiments on raw sessions: what would change the floor
    log("profile: raw-session experiments")
    det_path = models.files["detector"].path
    emb_path = models.files["embedder"].path

    def sess(path: Path, threads: int, spin: bool = True) -> ort.InferenceSession:
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.log_severity_level = 3
        if not spin:
            o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), o, providers=list(ctx.providers))

    def ms_per_call(s: ort.InferenceSession, shape: tuple[int, ...], calls: int) -> dict:
        x = np.random.default_rng(0).random(shape, np.float32)
        name = s.get_inputs()[0].name
        s.run(None, {name: x})
        vals = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            for _ in range(calls):
                s.run(None, {name: x})
            vals.append((time.perf_counter() - t0) / calls * 1000)
        return stats(vals)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ex = out["experiments"]
    size = ctx.settings.det_size
    h, w = info.height, info.width
    rect_h = -(-round(h * size / max(h, w)) // 32) * 32
    rect_w = -(-round(w * size / max(h, w)) // 32) * 32
    for threads in sorted({1, cores}):
        d = sess(det_path, threads)
        ex[f"detector {size}x{size} ms (threads {threads})"] = ms_per_call(d, (1, 3, size, size), 15)
        ex[f"detector {rect_h}x{rect_w} ms, rectangular letterbox (threads {threads})"] = ms_per_call(
            d, (1, 3, rect_h, rect_w), 15)
        e = sess(emb_path, threads)
        ex[f"embedder ms/face, batch 1 (threads {threads})"] = ms_per_call(e, (1, 3, 112, 112), 30)
        e32 = ms_per_call(e, (32, 3, 112, 112), 2)
        ex[f"embedder ms/face, batch 32 (threads {threads})"] = {k: (v / 32 if k != "n" else v)
                                                                 for k, v in e32.items()}
    # does the rectangular letterbox find the same faces? (naive detector, both canvases)
    from bench.naive import NaiveLoop

    found: dict[bool, dict[str, Any]] = {}
    rect_ms: dict[bool, list[float]] = {}
    for rect in (False, True):
        det = NaiveLoop(a.weights_dir, liveness=False, providers=ctx.providers, rect=rect,
                        det_size=ctx.settings.det_size, det_threshold=ctx.settings.det_threshold,
                        nms_threshold=ctx.settings.nms_threshold, min_face_px=ctx.settings.min_face_px)
        det.detect(frames[0])
        fi, bx, times = [], [], []
        for i, img in enumerate(frames):
            t0 = time.perf_counter()
            boxes, _, _ = det.detect(img)
            times.append((time.perf_counter() - t0) * 1000)
            fi += [i] * len(boxes)
            bx += list(boxes)
        rect_ms[rect] = times
        found[rect] = {"frame_idx": np.asarray(fi, np.int64),
                       "boxes": np.asarray(bx, np.float32).reshape(-1, 4),
                       "embeddings": np.zeros((0, 0)), "liveness": np.full(len(fi), np.nan)}
    out["rect_letterbox"] = {
        "frames": len(frames),
        "square_ms_per_frame": stats(rect_ms[False]),
        "rect_ms_per_frame": stats(rect_ms[True]),
        "agreement": compare_faces(found[True], found[False]),
    }

    # alternating sessions, as the pipeline does: does intra-op spinning steal the other's cores?
    for spin in (True, False):
        d, e = sess(det_path, cores, spin), sess(emb_path, cores, spin)
        xd = np.random.default_rng(0).random((1, 3, size, size), np.float32)
        xe = np.random.default_rng(0).random((2, 3, 112, 112), np.float32)
        d.run(None, {d.get_inputs()[0].name: xd})
        e.run(None, {e.get_inputs()[0].name: xe})
        vals = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            for _ in range(15):
                d.run(None, {d.get_inputs()[0].name: xd})
                e.run(None, {e.get_inputs()[0].name: xe})
            vals.append((time.perf_counter() - t0) / 15 * 1000)
        ex[f"detect + embed 2 faces, alternating sessions ms (spinning {'on' if spin else 'off'})"] = stats(
            vals)
    if ctx.footage_results:
        mode = ctx.footage_results["modes"].get("every frame")
        if mode:
            fid = mode["systems"][FACEID]
            out["pipeline_video_s_per_s_at_every_frame"] = fid["video_s_per_s"]["median"]
            seq_rate = out["sequential_video_s_per_s_at_every_frame"]
            out["overlap_gain"] = fid["video_s_per_s"]["median"] / seq_rate
    return out


def _cprofile_chunk(ctx: Context, info, frames: int) -> dict[str, Any]:
    import cProfile
    import pstats

    from faceid_jobs.pipeline.chunk import ChunkJob, analyse_chunk
    from faceid_jobs.video.chunks import Chunk

    clip = ctx.args.clip
    job = ChunkJob(video_uri=str(clip), path=str(clip), fingerprint="bench", fps=info.fps,
                   frame_count=info.frame_count, chunk=Chunk(0, 0, frames), is_last=False,
                   analysis_id="bench")
    settings = ctx.settings.replace(sample_fps=0.0)
    models = ctx.models(True)
    holders = [("detector", models.detector), ("embedder", models.embedder)]
    if models.liveness is not None:
        holders += [(f"liveness{i}", m) for i, m in enumerate(models.liveness.models)]
    timers = {name: _TimedSession(holder.session) for name, holder in holders}
    for name, holder in holders:
        holder.session = timers[name]
    prof = cProfile.Profile()
    try:
        t0 = time.perf_counter()
        prof.enable()
        result = analyse_chunk(job, models, settings)
        prof.disable()
        wall = time.perf_counter() - t0
    finally:
        for name, holder in holders:
            holder.session = timers[name].inner
    st = pstats.Stats(prof)
    rows = []
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in st.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}" if line else path
        rows.append({"function": f"{func} ({where})", "calls": ncalls, "self_s": tottime, "cum_s": cumtime})
    rows.sort(key=lambda r: -r["self_s"])
    return {"frames": frames, "faces": len(result.faces), "wall_s": wall,
            "video_s_per_s": frames / info.fps / wall, "top_self_time": rows[:15],
            "session_run_s": {name: t.seconds for name, t in timers.items()},
            "session_run_calls": {name: t.calls for name, t in timers.items()}}


class _TimedSession:
    """Wraps an onnxruntime session: counts `run` calls and their wall time."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# ---------------------------------------------------------------------------------------------
# report


def _render_search(sr: dict[str, Any]) -> list[str]:
    """The search and merge tables (also for result files of earlier harness versions)."""
    ip = sr.get("index_params", {})
    k, above_k = sr.get("k", 20), sr.get("above_threshold_k", 128)
    what = "synthetic face records" if sr.get("data") else "synthetic unit vectors"
    lines = ["", f"## Search (single query, top-{k}; {what}, encrypted shards)", "",
             f"Index parameters: exact up to {ip.get('exact_max')} vectors per shard, IVF "
             f"({ip.get('ivf_codec')}, nprobe {ip.get('nprobe')}) above; FAISS OpenMP threads "
             f"{sr['faiss_omp_threads']}. Data: {sr.get('data', 'uniform random unit vectors')}.", ""]
    rows = []
    for n, e in sr["sizes"].items():
        rows.append([f"{int(n):,}", f"{e.get('shards')} {'/'.join(e.get('shard_kinds', []))}".strip(),
                     fmt(e["faiss_floor"]["p50_ms"], 3), fmt(e.get("faiss_same_kind", {}).get("p50_ms"), 3),
                     fmt(e["index_search"]["p50_ms"], 3), fmt(e["index_search"]["p95_ms"], 3),
                     fmt(e["search_index_with_hits"]["p50_ms"], 3),
                     fmt(e["search_index_with_hits"]["p95_ms"], 3), fmt(e["recall_at_20_vs_exact"], 3),
                     fmt(e.get("above_threshold_found_share", e.get("source_found_share")), 3),
                     fmt_stat(e["open_index_s"], 3), fmt_stat(e.get("cli_cold_wall_s")),
                     fmt_stat(e.get("cli_peak_rss_mib"), 0)])
    lines.append(md_table(["vectors", "shards", "FAISS flat p50 ms", "FAISS same kind p50 ms", "index p50 ms",
                           "p95 ms", "search_index p50 ms", "p95 ms", f"recall@{k}",
                           "above 0.4 found", "open_index s", "cold CLI s", "CLI peak RSS MiB"], rows))
    if sr.get("above_threshold_k"):
        lines.append(f"\nabove 0.4 found: share of the stored vectors with cosine ≥ {sr.get('threshold', 0.4)} to "
                     f"the query (its identity's faces) among the index's top-{above_k}, against exact search.")
    else:  # result files of earlier harness versions
        lines.append("\nabove 0.4 found: here the share of queries whose source vector was returned.")
    for n, e in sr["sizes"].items():
        if e.get("cli_error"):
            lines.append(f"\nCold CLI over {int(n):,} failed: `{e['cli_error']}`")
    if sr.get("cli"):
        lines.append(f"\nCold CLI: {sr['cli']}")
    merges = {n: e for n, e in sr["sizes"].items() if e.get("merge")}
    if merges:
        lines += ["", "Merge into encrypted shards (vectors per second; floors over the same vectors and bytes):", ""]
        rows = []
        for n, e in merges.items():
            m = e["merge"]
            rows.append([f"{int(n):,}", fmt(m["merge_s"], 1), fmt(m["merge_vectors_per_s"], 0),
                         fmt(m.get("read_records_vectors_per_s"), 0), fmt(m.get("faiss_build_vectors_per_s"), 0),
                         fmt(m.get("faiss_add_vectors_per_s"), 0), fmt(m.get("aes_gcm_vectors_per_s"), 0),
                         fmt(m.get("aes_gcm_mib_per_s"), 0), fmt(e.get("shard_mib"), 0)])
        lines.append(md_table(["vectors", "merge s", "merge", "decrypt records", "FAISS train + add",
                               "FAISS add", "AES-GCM", "AES-GCM MiB/s", "shards MiB"], rows))
    else:  # result files of earlier harness versions
        lines.append("\nMerge vectors/s: " + ", ".join(f"{int(n):,}: {fmt(e.get('merge_vectors_per_s'), 0)}"
                                                      for n, e in sr["sizes"].items()))
    sweeps = {n: e["nprobe_sweep"] for n, e in sr["sizes"].items() if e.get("nprobe_sweep")}
    for n, sweep in sweeps.items():
        lines += ["", f"nprobe against recall over {int(n):,} vectors:", ""]
        lines.append(md_table(["nprobe", "index p50 ms", "p95 ms", f"recall@{k}", "above 0.4 found"],
                              [[p, fmt(v["index_search"]["p50_ms"], 3), fmt(v["index_search"]["p95_ms"], 3),
                                fmt(v["recall_at_20_vs_exact"], 3), fmt(v["above_threshold_found_share"], 3)]
                               for p, v in sweep.items()]))
    if sr.get("ivf_in_memory"):
        lines += ["", "IVF built in memory regardless of exact_max (uniform vectors: no clusters, the worst case):",
                  ""]
        lines.append(md_table(["data", "vectors", "kind", "nprobe", "build s", "p50 ms", f"recall@{k}",
                               "above 0.4 found"],
                              [[r["data"], f"{r['vectors']:,}", r["kind"], r["nprobe"], fmt(r["build_s"], 1),
                                fmt(r["search"]["p50_ms"], 3), fmt(r["recall_at_20_vs_exact"], 3),
                                fmt(r["above_threshold_found_share"], 3)] for r in sr["ivf_in_memory"]]))
    return lines


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# faceid-jobs benchmark — {results['date']} on {m['host']}",
        "",
        f"{m['cpu_model']}, {m['cores_usable']} cores, {m['memory_gib']} GiB; onnxruntime "
        f"{m['onnxruntime']} ({results['device']}); OpenCV {m['opencv']}; FAISS {m['faiss']}; "
        f"InsightFace {m['insightface'] or 'not installed'}. Runs per figure: {results['runs']}; "
        "figures are median (min–max).",
        f"GPU: {results['gpu']}",
        "",
        f"Command: `{results['command']}`",
    ]
    s = results["sections"]
    failed = {k: v for k, v in s.items() if "error" in v}
    s = {k: v for k, v in s.items() if "error" not in v}
    for name, v in failed.items():
        lines += ["", f"## {name}: FAILED", "", f"`{v['error']}` (traceback in the JSON)"]
    if "footage" in s:
        f = s["footage"]
        lines += ["", "## Footage throughput (video seconds per wall second; higher is better)", ""]
        rows = []
        for label, mode in f["modes"].items():
            for name, r in mode["systems"].items():
                others = [x for x in r.get("other_processes_cpu_share_runs", []) if x is not None]
                cores = r["process_cpu_s"]["median"] / r["wall_s"]["median"] if r["wall_s"]["n"] else None
                cpu_per_video_s = r["process_cpu_s"]["median"] / mode["video_seconds"]
                rows.append([
                    label, name, fmt_stat(r["video_s_per_s"]), fmt_stat(r["wall_s"]),
                    r["frames_analysed"], r["faces"],
                    fmt_ratio(r.get(f"speedup_vs_{NAIVE}")), fmt_ratio(r.get(f"speedup_vs_{PEER}")),
                    fmt(cpu_per_video_s), fmt(cores), f"{max(others):.0%}" if others else "–",
                ])
        lines.append(md_table(["sampling", "system", "video s / s", "wall s", "frames", "faces",
                               "× naive", "× InsightFace", "CPU s / video s", "cores used",
                               "others' CPU (max)"], rows))
        if f.get("peer"):
            lines.append(f"\nInsightFace row missing: {f['peer']}")
        lines += ["", "Agreement of faceid-jobs with the references (same frames, faces matched by IoU):", ""]
        rows = []
        for label, mode in f["modes"].items():
            for ours, ref, key in ((FACEID, NAIVE, "agreement_vs_naive"),
                                   (FACEID, PEER, "agreement_vs_insightface"),
                                   (FACEID_NOREUSE, NAIVE, "agreement_reuse_off_vs_naive"),
                                   (FACEID_NOREUSE, PEER, "agreement_reuse_off_vs_insightface")):
                ag = mode.get(key)
                if not ag:
                    continue
                rows.append([label, ours, ref, f"{ag['faces_ours']} / {ag['faces_ref']}",
                             ag["frames_with_different_face_count"], ag["unmatched_faces"],
                             fmt(ag["bbox_max_abs_diff_px"]), fmt(ag["bbox_within_1px_share"], 3),
                             fmt(ag["embedding_cosine_min"], 4), fmt(ag["liveness_max_abs_diff"], 4)])
        lines.append(md_table(["sampling", "ours", "reference", "faces ours / ref", "frames ≠ count", "unmatched",
                               "max box Δ px", "share ≤ 1 px", "min emb cos", "max liveness Δ"], rows))
    if "batch" in s:
        b = s["batch"]
        lines += ["", f"## Faces per second against batch size ({b['faces']} faces from the clip)", ""]
        rows = []
        for size in b["embed"]:
            rows.append([size, fmt_stat(b["embed"][size], 1), fmt_stat(b["embed_raw_session"][size], 1),
                         fmt_stat(b["liveness"].get(size), 1)])
        lines.append(md_table(["batch", "embed (ArcFace.embed)", "embed graph only", "liveness (2 models)"],
                              rows))
        lines.append(f"\nLiveness measured through: {b['liveness_api']}.")
    if "search" in s:
        lines += _render_search(s["search"])
    if "memory" in s:
        mm = s["memory"]
        lines += ["", f"## Peak RSS of processing at 4 fps ({mm['runner']})", ""]
        rows = [[label, fmt(v["video_seconds"], 1), fmt_stat(v["peak_rss_mib"], 0), fmt_stat(v["wall_s"], 1),
                 fmt_stat(v["video_s_per_s"])] for label, v in mm["videos"].items()]
        lines.append(md_table(["video", "seconds", "peak RSS MiB", "wall s", "video s / s"], rows))
        if mm.get("growth_long_vs_short"):
            lines.append(f"\nLooped vs ×1 peak RSS: {mm['growth_long_vs_short']:.3f}×")
    if "relabel" in s:
        rl = s["relabel"]
        lines += ["", "## Relabel (`faceid-jobs relabel --json` as a fresh process)", "",
                  md_table(["stored faces", "record files", "identities", "labelled", "faces / s (relabel)",
                            "command wall s (incl. start-up)"],
                           [[f"{rl['faces']:,}", rl["record_files"], f"{rl['identities']:,}",
                             f"{rl['labelled_faces']:,}", fmt_stat(rl["faces_per_s"], 0),
                             fmt_stat(rl["command_wall_s"])]])]
    if "profile" in s:
        p = s["profile"]
        lines += ["", f"## Profile: each stage alone ({p['frames']} frames, "
                  f"{p['faces_per_frame']:.2f} faces/frame)", ""]
        rows = [[k, fmt_stat(v) if isinstance(v, dict) else v] for k, v in p["stages"].items()]
        lines.append(md_table(["stage", "median (min–max)"], rows))
        share = p["share_at_every_frame"]
        lines.append("\nSequential cost at every frame: "
                     f"{p['sequential_ms_per_frame_at_every_frame']:.1f} ms/frame = "
                     f"{p['sequential_video_s_per_s_at_every_frame']:.2f} video s/s; shares: "
                     + ", ".join(f"{k} {v:.0%}" for k, v in share.items()) + ".")
        if "overlap_gain" in p:
            lines.append(f"Pipeline measured {p['pipeline_video_s_per_s_at_every_frame']:.2f} video s/s "
                         f"= {p['overlap_gain']:.2f}× the sequential sum.")
        lines += ["", md_table(["raw-session experiment", "ms, median (min–max)"],
                               [[k, fmt_stat(v)] for k, v in p["experiments"].items()])]
        rl = p.get("rect_letterbox")
        if rl:
            ag = rl["agreement"]
            lines.append(
                f"\nDetector with a rectangular letterbox (naive pre/post-processing, {rl['frames']} "
                f"frames): {fmt_stat(rl['rect_ms_per_frame'])} ms/frame vs "
                f"{fmt_stat(rl['square_ms_per_frame'])} square; faces {ag['faces_ours']} vs "
                f"{ag['faces_ref']}, unmatched {ag['unmatched_faces']}, "
                f"largest box difference {fmt(ag['bbox_max_abs_diff_px'])} px, "
                f"{fmt(ag['bbox_within_1px_share'], 3)} of boxes within 1 px.")
        cp = p.get("analyse_chunk_cprofile")
        if cp:
            lines += ["", f"`analyse_chunk` main thread under cProfile ({cp['frames']} frames, every frame, "
                      f"{cp['wall_s']:.1f} s wall = {cp['video_s_per_s']:.2f} video s/s; "
                      "ONNX `run` = inference, `get` = waiting for decoded frames):", ""]
            lines.append(md_table(["function", "calls", "self s", "cumulative s"],
                                  [[r["function"], r["calls"], fmt(r["self_s"]), fmt(r["cum_s"])]
                                   for r in cp["top_self_time"][:10]]))
            runs = ", ".join(f"{k} {v:.2f} s ({cp['session_run_calls'][k]} calls)"
                             for k, v in cp["session_run_s"].items())
            lines.append(f"\nInference inside that run, by model: {runs}; "
                         f"other main-thread time {cp['wall_s'] - sum(cp['session_run_s'].values()):.2f} s.")
    loads = ", ".join(f"{k} {v:.2f}" for k, v in results["load_seconds"].items())
    lines += ["", f"Model load seconds: {loads}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not args.clip.is_file():
        print(f"bench: footage {args.clip} not found (pass --clip)", file=sys.stderr)
        return 2
    if not args.weights_dir.is_dir():
        print(f"bench: weights folder {args.weights_dir} not found (pass --weights-dir)", file=sys.stderr)
        return 2
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    import signal

    def _stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # so the finally below removes the temp folder

    signal.signal(signal.SIGTERM, _stop)
    ctx = Context(args)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "date": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "runs": args.runs,
        "device": args.device,
        "gpu": _gpu_note(args.device),
        "machine": machine_facts(),
        "weights_dir": str(args.weights_dir),
        "sections": {},
        "load_seconds": ctx.load_seconds,
    }
    out = args.out or REPO / "bench" / "results" / (
        f"{datetime.now():%Y-%m-%d}-{results['machine']['host']}.json")
    checkpoint = out.with_suffix(".partial.json")
    fns = {"footage": section_footage, "batch": section_batch, "search": section_search,
           "memory": section_memory, "relabel": section_relabel, "profile": section_profile}
    try:
        for name in SECTIONS:
            if name in args.sections:
                t0 = time.perf_counter()
                busy = wait_idle(args.wait_idle) if args.wait_idle else cpu_busy()
                load_before = os.getloadavg()[0]
                if busy is not None and busy > 0.25:
                    log(f"{name}: warning: CPU {busy:.0%} busy with other processes before the section: "
                        "figures will be noisy")
                with contextlib.redirect_stdout(io.StringIO()) as captured:
                    try:
                        results["sections"][name] = fns[name](ctx)
                    except Exception as exc:  # one broken section must not lose the others
                        import traceback

                        log(f"{name}: FAILED: {type(exc).__name__}: {exc}")
                        results["sections"][name] = {
                            "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(limit=6),
                        }
                noise = captured.getvalue().strip()
                if noise:
                    log(f"{name}: suppressed stdout: {noise[:200]}")
                results.setdefault("section_seconds", {})[name] = time.perf_counter() - t0
                results.setdefault("load_average_1min", {})[name] = {
                    "before": load_before, "after": os.getloadavg()[0], "cpu_busy_before": busy}
                # checkpoint: a run stopped later keeps the sections done so far
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                checkpoint.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
                log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
        if ctx._models:
            first = next(iter(ctx._models.values()))
            results["settings"] = {k: v for k, v in asdict(ctx.settings).items() if k != "store"}
            results["model_ids"] = first.ids
            results["providers_used"] = list(getattr(first, "providers", []))
    finally:
        ctx.cleanup()
    results["total_seconds"] = time.perf_counter() - started
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


def _json_default(o: Any) -> Any:
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
