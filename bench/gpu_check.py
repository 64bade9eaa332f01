"""GPU check: providers, ms per stage, video s/s, and agreement with the CPU path.

Usage: python bench/gpu_check.py [--weights DIR] [--video FILE] [--devices cuda,tensorrt]
                                 [--budget 360] [--json OUT]

Run by bench/gpu_check.sh (which installs onnxruntime-gpu's CUDA/cuDNN wheels
first); `--devices cpu` runs the same code on a CPU-only machine (a dry run).
For each variant (device × precision: cuda fp32 with and without IO binding,
cuda fp16, tensorrt fp16 with its engine cache) it prints:

- ms per frame (detector, 384×640 input from the 16:9 clip) and per face
  (embedder and both liveness models at the configured GPU batch);
- video seconds per wall second over the clip, every frame and at 4 fps:
  decode once up front (reported apart), then detect → align → liveness →
  embed in batches across frames, as the pipeline does (no reuse, no store);
- agreement with the fp32 CPU path on the same frames: faces matched, box
  error, embedding cosine (same crops), |ΔP(live)|.

Variants run in order and stop when `--budget` seconds have passed, so the
whole check fits its time whatever TensorRT's engine builds cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the check runs from a checkout, installed or not


def first_dir(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c and c.is_dir()), None)


def decode(video: Path, step: int) -> tuple[list[np.ndarray], float, float]:
    """Every `step`-th frame of the video, the clip's length in seconds, and decode ms/frame."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames, index = [], 0
    start = time.perf_counter()
    while cap.grab():
        if index % step == 0:
            ok, frame = cap.retrieve()
            if ok:
                frames.append(frame)
        index += 1
    cap.release()
    elapsed = time.perf_counter() - start
    return frames, index / fps, elapsed * 1000 / max(len(frames), 1)


def best_ms(fn, count: int, rounds: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000 / max(count, 1)


def stage_ms(models, frames, crops, live_crops, batch: int) -> dict[str, float]:
    sample = frames[:50]
    return {
        "detect_ms_per_frame": best_ms(lambda: [models.detector.detect(f) for f in sample], len(sample)),
        "embed_ms_per_face": best_ms(lambda: models.embedder.embed(crops, batch_size=batch), len(crops)),
        "liveness_ms_per_face": best_ms(lambda: models.liveness.score_crops(live_crops, batch), len(crops)),
    }


def video_rate(models, frames, seconds: float, batch: int) -> float:
    """Video seconds per wall second for the models over decoded frames (batches across frames)."""
    from faceid_jobs.models.align import align_faces

    start = time.perf_counter()
    pending: list[np.ndarray] = []
    pending_live: list[list[np.ndarray]] = [[] for _ in models.liveness.models]

    def flush() -> None:
        if pending:
            models.embedder.embed(np.concatenate(pending), batch_size=batch)
            models.liveness.score_crops([np.concatenate(c) for c in pending_live], batch)
            pending.clear()
            for c in pending_live:
                c.clear()

    queued = 0
    for frame in frames:
        faces = models.detector.detect(frame)
        if len(faces):
            pending.append(align_faces(frame, faces.kps))
            for i, c in enumerate(models.liveness.crops(frame, faces.xyxy)):
                pending_live[i].append(c)
            queued += len(faces)
            if queued >= batch:
                flush()
                queued = 0
    flush()
    return seconds / (time.perf_counter() - start)


def agreement(ref, cand, frames) -> dict[str, float]:
    from faceid_jobs.models.agreement import DetectionAgreement, summarise_cosines
    from faceid_jobs.models.align import align_faces

    det = DetectionAgreement()
    cos, live = [], []
    for frame in frames:
        a, b = ref.detector.detect(frame), cand.detector.detect(frame)
        pairs = det.add(a.xyxy, b.xyxy)
        if pairs:
            ri = [i for i, _ in pairs]
            crops = align_faces(frame, a.kps[ri])
            cos.append(np.sum(ref.embedder.embed(crops) * cand.embedder.embed(crops), axis=1))
            live.append(np.abs(ref.liveness.score(frame, a.xyxy[ri]) - cand.liveness.score(frame, a.xyxy[ri])))
    s = det.summary()
    c = summarise_cosines(np.concatenate(cos) if cos else np.zeros(0))
    return {"faces_cpu": s["reference_faces"], "faces": s["candidate_faces"], "matched": s["matched"],
            "box_err_p99_px": round(s["box_err_p99"], 3), "within_1px": round(s["within_1px"], 4),
            "cosine_min": round(c["min"], 5), "cosine_mean": round(c["mean"], 5),
            "liveness_abs_diff_max": round(float(np.concatenate(live).max()) if live else 0.0, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--devices", default="cuda,tensorrt", help="comma list of cuda, tensorrt, cpu")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds; later variants are skipped")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import onnxruntime as ort

    from faceid_jobs.config import Settings, load_settings
    from faceid_jobs.models import load_models
    from faceid_jobs.models.runtime import cuda_status

    shared = REPO.parent / "shared"
    weights = args.weights or first_dir(shared / "weights", REPO / "shared" / "weights", REPO / "weights" / "files")
    video = args.video or next((p for p in (shared / "media/friends/in_video.mp4",
                                             REPO / "shared/media/friends/in_video.mp4") if p.is_file()), None)
    if weights is None or video is None:
        print("error: weights or video not found; pass --weights DIR --video FILE", file=sys.stderr)
        return 2
    print(f"onnxruntime {ort.__version__}; available providers: {', '.join(ort.get_available_providers())}")
    ok, why = cuda_status()
    print(f"CUDA usable: {ok} ({why})")

    gpu = load_settings(REPO / "configs" / "gpu.toml", environ={})
    base = Settings(weights_dir=str(weights), device="cpu")
    batch = gpu.embed_batch
    every, seconds, decode_every = decode(video, 1)
    four = decode(video, max(1, round(25 / 4)))[0]
    print(f"clip {video.name}: {seconds:.1f} s, {len(every)} frames; decode {decode_every:.2f} ms/frame "
          f"(= {seconds / (decode_every * len(every) / 1000):.1f} video s/s on one core)")

    ref = load_models(base)  # fp32 CPU reference
    from faceid_jobs.models.align import align_faces

    busiest = max(every[:120], key=lambda f: len(ref.detector.detect(f)))
    faces = ref.detector.detect(busiest)
    crops = np.concatenate([align_faces(busiest, faces.kps)] * (1 + batch // max(len(faces), 1)))[:batch]
    live_crops = [np.concatenate([c] * (1 + batch // max(len(faces), 1)))[:batch]
                  for c in ref.liveness.crops(busiest, faces.xyxy)]
    check_frames = every[::10]

    precision_dir = Path(tempfile.mkdtemp(prefix="faceid-fp16-"))
    variants = []
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    for device in devices:
        if device == "cuda":
            variants += [("cuda fp32", dict(device="cuda")),
                         ("cuda fp32, no IO binding", dict(device="cuda", io_binding=False)),
                         ("cuda fp16", dict(device="cuda", precision="fp16"))]
        elif device == "tensorrt":
            variants += [("tensorrt fp16", dict(device="tensorrt", precision="fp16",
                                                trt_cache=str(Path(tempfile.gettempdir()) / "faceid-trt")))]
        elif device == "cpu":
            variants += [("cpu fp32 (dry run)", dict(device="cpu")),
                         ("cpu fp16 (dry run)", dict(device="cpu", precision="fp16"))]
    results = {}
    rows = []
    for name, changes in variants:
        if time.perf_counter() - started > args.budget:
            print(f"{name}: skipped (budget of {args.budget:.0f} s spent)")
            continue
        try:
            if changes.get("precision") == "fp16":
                _make_fp16(base, precision_dir)
            settings = gpu.replace(weights_dir=str(weights), precision_dir=str(precision_dir), **changes)
            t0 = time.perf_counter()
            models = load_models(settings)
            print(f"{name}: loaded in {time.perf_counter() - t0:.1f} s (TensorRT: engines built or read from cache)")
        except Exception as exc:  # report and go on with the next variant
            print(f"{name}: cannot load ({str(exc).splitlines()[0]})")
            continue
        stages = stage_ms(models, every, crops, live_crops, batch)
        rate_every = video_rate(models, every, seconds, batch)
        rate_four = video_rate(models, four, seconds, batch)
        agree = agreement(ref, models, check_frames)
        results[name] = {"providers": models.providers, **stages, "video_s_per_s_every_frame": rate_every,
                         "video_s_per_s_4fps": rate_four, "agreement_with_cpu": agree}
        rows.append((name, models.providers[0] if models.providers else "?", stages, rate_every, rate_four, agree))
        print(f"{name}: providers {models.providers}; detect {stages['detect_ms_per_frame']:.2f} ms/frame, "
              f"embed {stages['embed_ms_per_face']:.3f} ms/face, liveness {stages['liveness_ms_per_face']:.3f} "
              f"ms/face (batch {batch}); video s/s every frame {rate_every:.1f}, 4 fps {rate_four:.1f}; "
              f"vs CPU: faces {agree['faces']}/{agree['faces_cpu']}, matched {agree['matched']}, "
              f"box p99 {agree['box_err_p99_px']} px, cosine min {agree['cosine_min']} "
              f"mean {agree['cosine_mean']}, |dP(live)| max {agree['liveness_abs_diff_max']}", flush=True)
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"onnxruntime": ort.__version__, "cuda": [ok, why],
                                         "clip_seconds": seconds, "decode_ms_per_frame": decode_every,
                                         "batch": batch, "variants": results}, indent=2))
    return 0 if results else 1


def _make_fp16(base, folder: Path) -> None:
    from faceid_jobs.models import resolve_model_path
    from faceid_jobs.models.convert import convert_fp16
    from faceid_jobs.models.precision import derived_path
    from faceid_jobs.models.runtime import ModelFile

    sources = [resolve_model_path(base, "detector"), resolve_model_path(base, "embedder")]
    sources += [base.resolved_weights_dir() / n for n in base.liveness]
    for path in sources:
        f = ModelFile.from_path(path)
        dest = derived_path(f.path, f.id, "fp16", folder)
        if not dest.exists():
            convert_fp16(f.path, dest)


if __name__ == "__main__":
    os.environ.setdefault("ORT_LOG_SEVERITY_LEVEL", "3")
    sys.exit(main())
