"""The sampling grid the peers share with faceid-jobs, without importing faceid-jobs.

The peers run in their own virtualenvs, which do not have the project
installed. `faceid_jobs/video/chunks.py` imports nothing but numpy, so it is
loaded here as a plain file: the peers analyse exactly the frames faceid-jobs
does, by the same code, with no copy to drift.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["sampled_frames"]

_CHUNKS = Path(__file__).resolve().parents[2] / "faceid_jobs" / "video" / "chunks.py"
_NAME = "faceid_jobs_chunks_for_peers"


def _load_chunks():
    spec = importlib.util.spec_from_file_location(_NAME, _CHUNKS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


sampled_frames = _load_chunks().sampled_frames
