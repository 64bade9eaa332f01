"""Batch: embedding and liveness faces per second against batch size (in-process, the library)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import (
    log,
    stats,
)
from bench.sections.context import Context
from bench.timing import clock


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


def run(ctx: Context) -> dict[str, Any]:
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
            t0 = clock()
            emb.embed(crops, batch_size=b)
            rates.append(len(crops) / (clock() - t0))
            # the floor: the graph alone on ready blobs
            blob = ((crops[..., ::-1].astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
            t0 = clock()
            for s in range(0, len(blob), b):
                emb.session.run([emb.output_name], {emb.input_name: blob[s:s + b]})
            raw_rates.append(len(crops) / (clock() - t0))
            if lv is not None:
                t0 = clock()
                if has_score_crops:
                    lv.score_crops(live_crops, batch_size=b)
                else:
                    for m, lc in zip(lv.models, live_crops, strict=True):
                        for s in range(0, len(lc), b):
                            x = lc[s:s + b].transpose(0, 3, 1, 2).astype(np.float32)
                            m.session.run([m.output_name], {m.input_name: x})
                live_rates.append(len(crops) / (clock() - t0))
        out["embed"][str(b)] = stats(rates)
        out["embed_raw_session"][str(b)] = stats(raw_rates)
        if live_rates:
            out["liveness"][str(b)] = stats(live_rates)
    return out
