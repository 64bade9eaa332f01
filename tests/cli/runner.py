"""Run the installed `faceid-jobs` console script as a user would, and cut test clips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2

EXE = Path(sys.executable).parent / "faceid-jobs"


def run(args, env_extra=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")}
    env.update(env_extra or {})
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def cut_clip(source: Path, target: Path, seconds: float, start_frame: int = 0) -> Path:
    """Re-encode `seconds` of `source` from `start_frame` into `target` (mp4v)."""
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start_frame)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(int(seconds * fps)):
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    cap.release()
    return target
