"""The peer a user would otherwise pick: InsightFace's `FaceAnalysis`, as its own script.

    bench/.venvs/insightface/bin/python bench/peers/insightface/peer.py VIDEO \\
        --weights-dir ../shared/weights --sample-fps 4

Runs in its own virtualenv (requirements.txt here: InsightFace from PyPI, plain
CPU onnxruntime, opencv-python-headless), never inside the harness. Given
exactly the same two model files as faceid-jobs, in a `buffalo_s` folder made
of symlinks under a temporary `root` (so nothing is downloaded):
det_500m.onnx → det_500m.onnx, w600k_mbf.onnx → w600k_mbf_int8w.onnx (or the
official w600k_mbf.onnx when the weights folder has it). Detection and
recognition only, CPU provider, det_size 640×640, default threshold 0.5.
InsightFace runs no liveness; faceid-jobs does, on top.

The loop is InsightFace's documented one: `cap.read()` every frame,
`app.get(frame)` on the sampled ones (the same sampling grid as faceid-jobs).
Prints one JSON line: load and loop seconds, frames, faces.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import onnxruntime as ort

# appended, not prepended: bench/peers/insightface must not shadow the real package
sys.path.append(str(Path(__file__).resolve().parent.parent))
from sampling import sampled_frames

EMBEDDERS = ("w600k_mbf.onnx", "w600k_mbf_int8w.onnx")


def face_analysis(weights_dir: Path, root: Path, det_size: int = 640):
    """FaceAnalysis over the shared model files (symlinked under `root`)."""
    from insightface.app import FaceAnalysis

    pack = root / "models" / "buffalo_s"
    pack.mkdir(parents=True)
    embedder = next((n for n in EMBEDDERS if (weights_dir / n).is_file()), EMBEDDERS[-1])
    (pack / "det_500m.onnx").symlink_to((weights_dir / "det_500m.onnx").resolve())
    (pack / "w600k_mbf.onnx").symlink_to((weights_dir / embedder).resolve())
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every model it finds
        app = FaceAnalysis(name="buffalo_s", root=str(root), allowed_modules=["detection", "recognition"],
                           providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=-1, det_size=(det_size, det_size))
    return app


def run(app, video: Path, sample_fps: float) -> dict:
    """InsightFace's documented loop over one video: read every frame, `get` the sampled ones."""
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(sampled_frames(0, count, fps, sample_fps).tolist())
    frames_read = frames_analysed = faces = 0
    t0 = time.perf_counter()
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frames_read in wanted:
                frames_analysed += 1
                faces += len(app.get(frame))
            frames_read += 1
    finally:
        cap.release()
    return {"loop_s": time.perf_counter() - t0, "frames_read": frames_read,
            "frames_analysed": frames_analysed, "faces": faces}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="InsightFace FaceAnalysis over one video")
    ap.add_argument("video", type=Path)
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--sample-fps", type=float, default=0.0)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # skimage deprecation warning from face_align, once per face
    ort.set_default_logger_severity(3)
    import insightface

    with tempfile.TemporaryDirectory(prefix="insightface-root-") as root:
        t0 = time.perf_counter()
        app = face_analysis(a.weights_dir, Path(root))
        load_s = time.perf_counter() - t0
        out = run(app, a.video, a.sample_fps)
    print(json.dumps({"system": "insightface", "load_s": load_s, **out, "modules": sorted(app.models),
                      "insightface": insightface.__version__, "onnxruntime": ort.__version__,
                      "opencv": cv2.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
