"""Make the fp16 copies of the configured models for `precision = "fp16"` (GPU).

Usage: python weights/fp16.py [--config FILE] [--out DIR]

Weights and compute in float16, inputs and outputs kept float32 (the wrappers
feed the copies as they feed the originals). Uses onnxruntime's own
converter (onnxruntime.transformers.float16), so nothing beyond `onnx` is
needed. On CPU fp16 graphs run but are slower than fp32 (no fp16 kernels for
most ops: onnxruntime casts around them); the gain is on GPU tensor cores.
TensorRT builds fp16 engines from the fp32 files itself when precision is
fp16 (trt_fp16_enable), so this copy matters for the CUDA provider.
Copies go to precision_dir (default ~/.cache/faceid-jobs/models) as
<stem>.<fp32 model id>.fp16.onnx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _script import run


def main(argv: list[str] | None = None) -> int:
    from faceid_jobs.config import load_settings
    from faceid_jobs.models import resolve_model_path
    from faceid_jobs.models.convert import convert_fp16
    from faceid_jobs.models.precision import derived_path, precision_folder
    from faceid_jobs.models.runtime import ModelFile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="settings TOML (else FACEID_JOBS_* / defaults)")
    parser.add_argument("--out", type=Path, default=None, help="precision folder (else the precision_dir setting)")
    args = parser.parse_args(argv)

    def body() -> None:
        settings = load_settings(args.config, overrides={"precision": "fp32"})
        out = precision_folder(settings.precision_dir, args.out)
        folder = settings.resolved_weights_dir()
        sources = [resolve_model_path(settings, "detector"), resolve_model_path(settings, "embedder")]
        sources += [folder / name for name in settings.liveness]
        for path in sources:
            source = ModelFile.from_path(path)
            dest = convert_fp16(source.path, derived_path(source.path, source.id, "fp16", out))
            print(f"fp16  {source.path.name} -> {dest}")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
