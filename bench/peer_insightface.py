"""The peer a user would otherwise pick: InsightFace's `FaceAnalysis`.

Given exactly the same two model files as faceid-jobs, in a `buffalo_s` folder
made of symlinks under a temporary `root` (so nothing is downloaded):
det_500m.onnx → det_500m.onnx, w600k_mbf.onnx → w600k_mbf_int8w.onnx (or the
official w600k_mbf.onnx when the weights folder has it). Detection and
recognition only, CPU provider, det_size 640×640, default threshold 0.5.
InsightFace runs no liveness; faceid-jobs does, on top.

The loop is InsightFace's documented one: `cap.read()` every frame,
`app.get(frame)` on the sampled ones (the same sampling grid as faceid-jobs).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from bench.naive import EMBEDDERS, NaiveResult

__all__ = ["InsightFacePeer", "available"]


def available() -> str | None:
    """None when `insightface` imports, else why not (one line)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from insightface.app import FaceAnalysis  # noqa: F401
    except Exception as exc:  # any import failure means: no peer row
        return f"{type(exc).__name__}: {exc}"
    return None


class InsightFacePeer:
    """FaceAnalysis over the shared model files, detection + recognition only."""

    def __init__(self, weights_dir: Path, det_size: int = 640, tmp_root: Path | None = None) -> None:
        from insightface.app import FaceAnalysis

        weights_dir = Path(weights_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="insightface-root-", dir=tmp_root)
        pack = Path(self._tmp.name) / "models" / "buffalo_s"
        pack.mkdir(parents=True)
        embedder = next((n for n in EMBEDDERS if (weights_dir / n).is_file()), EMBEDDERS[-1])
        (pack / "det_500m.onnx").symlink_to((weights_dir / "det_500m.onnx").resolve())
        (pack / "w600k_mbf.onnx").symlink_to((weights_dir / embedder).resolve())
        self.root = self._tmp.name
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.app = FaceAnalysis(
                name="buffalo_s",
                root=self.root,
                allowed_modules=["detection", "recognition"],
                providers=["CPUExecutionProvider"],
            )
            self.app.prepare(ctx_id=-1, det_size=(det_size, det_size))
        self.modules = sorted(self.app.models)

    def run(self, video: Path, sample_fps: float = 0.0) -> NaiveResult:
        from faceid_jobs.video.chunks import sampled_frames

        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(sampled_frames(0, count, fps, sample_fps).tolist())
        res = NaiveResult(seconds=0.0, frames_read=0, frames_analysed=0)
        idx = 0
        with warnings.catch_warnings():
            # skimage deprecation warning from insightface's face_align, once per face
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    res.frames_read += 1
                    if idx in wanted:
                        res.frames_analysed += 1
                        for face in self.app.get(frame):
                            emb = np.asarray(face.embedding, np.float32)
                            res.frame_idx.append(idx)
                            res.boxes.append(np.asarray(face.bbox, np.float32))
                            res.embeddings.append(emb / max(float(np.linalg.norm(emb)), 1e-12))
                    idx += 1
            finally:
                cap.release()
            res.seconds = time.perf_counter() - t0
        return res

    def close(self) -> None:
        self._tmp.cleanup()
