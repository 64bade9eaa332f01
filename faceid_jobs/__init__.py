"""faceid-jobs: find people in video archives by their faces.

The public Python API, imported on first use (so `import faceid_jobs` stays
cheap for the CLI)::

    import faceid_jobs

    settings = faceid_jobs.load_settings()                 # FACEID_JOBS_* env, config file
    summary = faceid_jobs.process(["/data/footage"], settings)   # in this process, no server
    result = faceid_jobs.search_photo("ross.jpg", settings)
    for hit in result.hits:
        print(hit.video, hit.timestamp_s, hit.similarity)

The library imports neither Prefect nor the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> "module:attribute"
_PUBLIC = {
    "Settings": "faceid_jobs.config:Settings",
    "load_settings": "faceid_jobs.config:load_settings",
    "load_models": "faceid_jobs.models:load_models",
    "open_workspace": "faceid_jobs.workspace:open_workspace",
    "process": "faceid_jobs.pipeline.process:run_local",
    "RunOptions": "faceid_jobs.pipeline.process:RunOptions",
    "search_photo": "faceid_jobs.search.photo_search:search_photo",
    "analyse": "faceid_jobs.photo:analyse",
    "face_of": "faceid_jobs.photo:face_of",
    "Faces": "faceid_jobs.types:Faces",
    "FaceIdError": "faceid_jobs.errors:FaceIdError",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'faceid_jobs' has no attribute {name!r}")
    module, attribute = _PUBLIC[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
