"""Profile: where the time goes, each stage alone (in-process, the library and raw sessions),
and the agreement of the detector's rectangular letterbox with the square one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    log,
    stats,
)
from bench.sections.context import Context
from bench.sections.footage import FRESH
from bench.timing import clock


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


def run(ctx: Context) -> dict[str, Any]:
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
    per_frame_ms: dict[str, list[float]] = {"read": [], "grab": []}
    for _ in range(a.runs):
        for how, times in per_frame_ms.items():
            cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
            t0 = clock()
            for _ in range(limit):
                getattr(cap, how)()
            times.append((clock() - t0) / limit * 1000)
            cap.release()
    for how, times in per_frame_ms.items():
        out["stages"][f"decode {how}() ms/frame"] = stats(times)
    for fps in (0.0, 4.0):
        ts = []
        for _ in range(a.runs):
            t0 = clock()
            n = sum(1 for _ in iter_chunk_frames(clip, Chunk(0, 0, limit), info.fps, fps, is_last=True))
            ts.append((clock() - t0) / limit * 1000)
        out["stages"][f"iter_chunk_frames @{fps:g} fps ms/video frame"] = stats(ts)
        out["stages"][f"iter_chunk_frames @{fps:g} fps frames yielded"] = n

    # per stage on real frames (every 2nd frame, sequential, no overlap)
    log("profile: detect / align / liveness / embed")
    frames = [img for i, img in iter_chunk_frames(clip, Chunk(0, 0, limit), info.fps, 0.0, is_last=True)
              if i % 2 == 0][:120]
    det_ms, align_ms = [], []
    crops_all, faces_all = [], []
    for img in frames:
        t0 = clock()
        faces = models.detector.detect(img)
        det_ms.append((clock() - t0) * 1000)
        t0 = clock()
        crops = align_faces(img, faces.kps)
        if len(faces):
            align_ms.append((clock() - t0) * 1000 / len(faces))
        crops_all.append(crops)
        faces_all.append((img, faces))
    n_faces = sum(len(f) for _, f in faces_all)
    crops = np.concatenate(crops_all)
    out["faces_per_frame"] = n_faces / max(1, len(frames))
    out["stages"]["detect ms/frame"] = stats(det_ms)
    out["stages"]["align ms/face"] = stats(align_ms)
    emb_ms = []
    for _ in range(a.runs):
        t0 = clock()
        models.embedder.embed(crops, batch_size=ctx.settings.embed_batch)
        emb_ms.append((clock() - t0) * 1000 / len(crops))
    out["stages"][f"embed ms/face (batch {ctx.settings.embed_batch})"] = stats(emb_ms)
    if models.liveness is not None:
        crop_ms, live_ms = [], []
        for _ in range(a.runs):
            t0 = clock()
            parts = [[m.crops(img, f.xyxy) for img, f in faces_all if len(f)] for m in models.liveness.models]
            crop_ms.append((clock() - t0) * 1000 / n_faces)
            stacked = [np.concatenate(p) for p in parts]
            t0 = clock()
            if hasattr(models.liveness, "score_crops"):
                models.liveness.score_crops(stacked, batch_size=ctx.settings.liveness_batch)
            else:
                for m, lc in zip(models.liveness.models, stacked, strict=True):
                    for s in range(0, len(lc), ctx.settings.liveness_batch):
                        x = lc[s:s + ctx.settings.liveness_batch].transpose(0, 3, 1, 2).astype(np.float32)
                        m.session.run([m.output_name], {m.input_name: x})
            live_ms.append((clock() - t0) * 1000 / n_faces)
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
            t0 = clock()
            for _ in range(calls):
                s.run(None, {name: x})
            vals.append((clock() - t0) / calls * 1000)
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
    from bench.peers.naive.naive import NaiveLoop

    found: dict[bool, dict[str, Any]] = {}
    rect_ms: dict[bool, list[float]] = {}
    for rect in (False, True):
        det = NaiveLoop(a.weights_dir, liveness=False, providers=ctx.providers, rect=rect,
                        det_size=ctx.settings.det_size, det_threshold=ctx.settings.det_threshold,
                        nms_threshold=ctx.settings.nms_threshold, min_face_px=ctx.settings.min_face_px)
        det.detect(frames[0])
        fi, bx, times = [], [], []
        for i, img in enumerate(frames):
            t0 = clock()
            boxes, _, _ = det.detect(img)
            times.append((clock() - t0) * 1000)
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
            t0 = clock()
            for _ in range(15):
                d.run(None, {d.get_inputs()[0].name: xd})
                e.run(None, {e.get_inputs()[0].name: xe})
            vals.append((clock() - t0) / 15 * 1000)
        ex[f"detect + embed 2 faces, alternating sessions ms (spinning {'on' if spin else 'off'})"] = stats(
            vals)
    footage = ctx.section_results.get("footage", {}).get("modes", {})
    mode = footage.get("clip, every frame")
    if mode and FRESH in mode["systems"] and mode["systems"][FRESH]["inflow_video_s_per_s"]["n"]:
        # the pipeline's own figure (the command's --json speed), not the whole command's
        fid = mode["systems"][FRESH]
        if True:
            out["pipeline_video_s_per_s_at_every_frame"] = fid["inflow_video_s_per_s"]["median"]
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
        t0 = clock()
        prof.enable()
        result = analyse_chunk(job, models, settings)
        prof.disable()
        wall = clock() - t0
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
        t0 = clock()
        try:
            return self.inner.run(*args, **kwargs)
        finally:
            self.seconds += clock() - t0
            self.calls += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
