"""The naive reference loop: what a user writes from the model READMEs.

Frame by frame, face by face, on raw onnxruntime with default session
options, and the same model files as faceid-jobs:

    for every frame: cap.read()                      (decode + BGR convert, always)
        if the frame is sampled:
            detect (SCRFD, 640×640 letterbox, batch 1)
            for each face, one at a time:
                align (5-point similarity → 112×112), embed (batch 1)
                liveness: two MiniFASNet crops, each model at batch 1

It does not use the project's code: it runs in its own virtualenv
(bench/peers/naive/requirements.txt); the sampling grid is restated in
bench/peers/sampling.py, so that both analyse the same frames. Pre- and post-processing follow the project's conventions
(INTER_AREA downscale into the letterbox, score 0.5, NMS 0.4, faces under
16 px dropped), so its faces can be compared with the pipeline's one by one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

# appended, not prepended: bench/peers/insightface must not shadow the real package
sys.path.append(str(Path(__file__).resolve().parent.parent))
from sampling import sampled_frames

__all__ = ["NaiveLoop", "NaiveResult", "liveness_box", "umeyama"]

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float64,
)
LIVENESS_MODELS = (("minifasnet_v2_2.7_80x80.onnx", 2.7), ("minifasnet_v1se_4.0_80x80.onnx", 4.0))
EMBEDDERS = ("w600k_mbf.onnx", "w600k_mbf_int8w.onnx")


@dataclass
class NaiveResult:
    """What one pass over a video found, and what it cost."""

    seconds: float
    frames_read: int
    frames_analysed: int
    frame_idx: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    liveness: list[float] = field(default_factory=list)
    stage_s: dict[str, float] = field(default_factory=dict)
    faces: int = 0


def umeyama(src: np.ndarray, dst: np.ndarray = ARCFACE_112) -> np.ndarray:
    """Least-squares similarity transform src → dst, (2, 3) for cv2.warpAffine."""
    src = np.asarray(src, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var = (sc**2).sum() / len(src)
    u, s, vt = np.linalg.svd(dc.T @ sc / len(src))
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / max(var, 1e-12)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def liveness_box(box: np.ndarray, w: int, h: int, scale: float) -> tuple[int, int, int, int]:
    """minivision's crop rule: enlarge about the centre (capped to fit), shift inside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = x1 + bw / 2, y1 + bh / 2
    left, top, right, bottom = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if left < 0:
        right -= left
        left = 0.0
    if top < 0:
        bottom -= top
        top = 0.0
    if right > w - 1:
        left -= right - w + 1
        right = w - 1.0
    if bottom > h - 1:
        top -= bottom - h + 1
        bottom = h - 1.0
    ix1, iy1 = min(max(int(left), 0), w - 1), min(max(int(top), 0), h - 1)
    return ix1, iy1, min(max(int(right), ix1), w - 1), min(max(int(bottom), iy1), h - 1)


def _nms(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> list[int]:
    x1, y1, x2, y2 = boxes.astype(np.float64).T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= thresh]
    return keep


class NaiveLoop:
    """Sequential per-frame, per-face reference over raw onnxruntime sessions."""

    def __init__(
        self,
        weights_dir: Path,
        *,
        det_size: int = 640,
        det_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        min_face_px: float = 16.0,
        liveness: bool = True,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        rect: bool = False,
    ) -> None:
        weights_dir = Path(weights_dir)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # w600k declares a [1, 512] output; hide the warning

        def session(name: str) -> ort.InferenceSession:
            return ort.InferenceSession(str(weights_dir / name), sess_options=opts, providers=list(providers))

        self.det = session("det_500m.onnx")
        embedder = next((n for n in EMBEDDERS if (weights_dir / n).is_file()), EMBEDDERS[-1])
        self.rec = session(embedder)
        self.live = [(session(n), s) for n, s in LIVENESS_MODELS] if liveness else []
        self.det_size = det_size
        self.det_threshold = det_threshold
        self.nms_threshold = nms_threshold
        self.min_face_px = min_face_px
        self._det_in = self.det.get_inputs()[0].name
        self._rec_in = self.rec.get_inputs()[0].name
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}
        self.rect = rect

    # -- detection -------------------------------------------------------------------------

    def detect(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes (n, 4), scores (n,), kps (n, 5, 2)) in image pixels, best first."""
        size = self.det_size
        h, w = img.shape[:2]
        ratio = min(size / w, size / h)
        nw, nh = min(size, max(1, round(w * ratio))), min(size, max(1, round(h * ratio)))
        interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        # square canvas as faceid-jobs and InsightFace use; `rect` keeps only the padding up
        # to the next multiple of 32 (the graph's input H, W are dynamic)
        ch, cw = (-(-nh // 32) * 32, -(-nw // 32) * 32) if self.rect else (size, size)
        canvas = np.zeros((ch, cw, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=interp)
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128, (cw, ch), (127.5, 127.5, 127.5), swapRB=True)
        outs = self.det.run(None, {self._det_in: blob})
        fmc = len(outs) // 3
        boxes, scores, kps = [], [], []
        for i, stride in enumerate((8, 16, 32)[:fmc]):
            sc = outs[i].reshape(-1)
            fh, fw = ch // stride, cw // stride
            key = (fh, fw, stride)
            if key not in self._centers:
                ys, xs = np.mgrid[:fh, :fw]
                c = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32) * stride
                self._centers[key] = np.repeat(c, len(sc) // (fh * fw), axis=0)
            centers = self._centers[key]
            sel = np.flatnonzero(sc >= self.det_threshold)
            if not sel.size:
                continue
            d = outs[i + fmc].reshape(-1, 4)[sel] * stride
            k = outs[i + 2 * fmc].reshape(-1, 10)[sel] * stride
            p = centers[sel]
            boxes.append(np.concatenate([p - d[:, :2], p + d[:, 2:]], 1))
            kps.append(p[:, None, :] + k.reshape(-1, 5, 2))
            scores.append(sc[sel])
        if not scores:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        b, s, k = np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)
        keep = _nms(b, s, self.nms_threshold)
        b, s, k = b[keep], s[keep], k[keep]
        sx, sy = nw / w, nh / h
        b = b / np.array([sx, sy, sx, sy])
        k = k / np.array([sx, sy])
        b[:, 0::2] = np.clip(b[:, 0::2], 0, w)
        b[:, 1::2] = np.clip(b[:, 1::2], 0, h)
        side = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        big = side >= max(self.min_face_px, 1e-6)
        return b[big].astype(np.float32), s[big].astype(np.float32), k[big].astype(np.float32)

    # -- one face ----------------------------------------------------------------------------

    def embed_one(self, img: np.ndarray, kps: np.ndarray) -> np.ndarray:
        crop = cv2.warpAffine(img, umeyama(kps), (112, 112), flags=cv2.INTER_LINEAR, borderValue=0)
        blob = ((crop[:, :, ::-1].astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
        feat = self.rec.run(None, {self._rec_in: np.ascontiguousarray(blob)})[0].reshape(-1)
        return feat / max(float(np.linalg.norm(feat)), 1e-12)

    def liveness_one(self, img: np.ndarray, box: np.ndarray) -> float:
        h, w = img.shape[:2]
        total = np.zeros(3, np.float64)
        for sess, scale in self.live:
            x1, y1, x2, y2 = liveness_box(box, w, h, scale)
            crop = cv2.resize(img[y1 : y2 + 1, x1 : x2 + 1], (80, 80))
            blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
            logits = sess.run(None, {sess.get_inputs()[0].name: blob})[0].reshape(-1).astype(np.float64)
            e = np.exp(logits - logits.max())
            total += e / e.sum()
        return float(total[1] / len(self.live))

    # -- a video ---------------------------------------------------------------------------------

    def run(self, video: Path, sample_fps: float = 0.0, *, keep: bool = True) -> NaiveResult:
        """Read every frame; analyse the sampled ones face by face."""
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(sampled_frames(0, count, fps, sample_fps).tolist())
        res = NaiveResult(seconds=0.0, frames_read=0, frames_analysed=0)
        t0 = time.perf_counter()
        idx = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                res.frames_read += 1
                if idx in wanted:
                    res.frames_analysed += 1
                    boxes, _, kps = self.detect(frame)
                    for box, points in zip(boxes, kps, strict=True):
                        emb = self.embed_one(frame, points)
                        live = self.liveness_one(frame, box) if self.live else float("nan")
                        res.faces += 1
                        if keep:
                            res.frame_idx.append(idx)
                            res.boxes.append(box)
                            res.embeddings.append(emb)
                            res.liveness.append(live)
                idx += 1
        finally:
            cap.release()
        res.seconds = time.perf_counter() - t0
        return res


def main(argv: list[str] | None = None) -> int:
    """`python naive.py VIDEO --weights-dir W --sample-fps F`: one pass, a JSON line on stdout."""
    ap = argparse.ArgumentParser(description="the naive reference loop over one video")
    ap.add_argument("video", type=Path)
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--sample-fps", type=float, default=0.0)
    ap.add_argument("--no-liveness", action="store_true")
    ap.add_argument("--det-shape", choices=("fit", "square"), default="fit",
                    help="detector input: the frame's shape padded to 32 (faceid-jobs' default) or 640×640")
    a = ap.parse_args(argv)
    ort.set_default_logger_severity(3)
    t0 = time.perf_counter()
    loop = NaiveLoop(a.weights_dir, liveness=not a.no_liveness, rect=a.det_shape == "fit")
    load_s = time.perf_counter() - t0
    res = loop.run(a.video, a.sample_fps, keep=False)
    print(json.dumps({"system": "naive", "load_s": load_s, "loop_s": res.seconds,
                      "frames_read": res.frames_read, "frames_analysed": res.frames_analysed,
                      "faces": res.faces, "onnxruntime": ort.__version__, "opencv": cv2.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
