"""Make the int8 (static QDQ) copies of the configured models for `precision = "int8"`.

Usage: python weights/quantize.py [--video CLIP] [--frames 48] [--config FILE] [--out DIR]

The fp32 files named by the settings (weights_dir, detector, embedder,
liveness) are calibrated on frames of a video (default: the Friends test
clip beside the repo): the detector on the letterboxed frames, the embedder
and the liveness models on the faces the fp32 detector finds in them. The
copies are written to precision_dir (default ~/.cache/faceid-jobs/models) as
<stem>.<fp32 model id>.int8.onnx, where `load_models` looks for them.
Needs the `onnx` package (pip install -e '.[convert]').
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from _script import run

HERE = Path(__file__).resolve().parent
DEFAULT_VIDEO = HERE.parent.parent / "shared" / "media" / "friends" / "in_video.mp4"


def main(argv: list[str] | None = None) -> int:
    from faceid_jobs.config import load_settings
    from faceid_jobs.models import load_models
    from faceid_jobs.models.convert import calibration_set, detector_head_nodes, quantize_int8, read_frames
    from faceid_jobs.models.precision import derived_path, precision_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="calibration footage")
    parser.add_argument("--frames", type=int, default=48, help="frames spread over the video")
    parser.add_argument("--config", type=Path, default=None, help="settings TOML (else FACEID_JOBS_* / defaults)")
    parser.add_argument("--out", type=Path, default=None, help="precision folder (else the precision_dir setting)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    def body() -> None:
        settings = load_settings(args.config, overrides={"device": "cpu", "precision": "fp32"})
        out = precision_folder(settings.precision_dir, args.out)
        started = time.perf_counter()
        models = load_models(settings)
        frames = read_frames(args.video, args.frames)
        calib = calibration_set(models, frames)
        jobs = [("detector", calib.detector, detector_head_nodes(models.files["detector"].path)),
                ("embedder", calib.embedder, [])]
        jobs += [(f"liveness{i}", blobs, []) for i, blobs in enumerate(calib.liveness)]
        for role, blobs, exclude in jobs:
            source = models.files[role]
            dest = derived_path(source.path, source.id, "int8", out)
            quantize_int8(source.path, dest, blobs, exclude=exclude)
            print(f"int8  {role:9s} {source.path.name} -> {dest}")
        print(f"done in {time.perf_counter() - started:.0f} s ({len(frames)} frames); "
              f"use precision = \"int8\" (FACEID_JOBS_PRECISION=int8)"
              + (f" with precision_dir = \"{out}\"" if args.out else ""))

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
