"""`faceid-jobs process` without the console script, for peak-RSS measurements.

Used by `bench/run.py --sections memory` only when `.venv/bin/faceid-jobs` does
not exist (package not installed): the same calls as the CLI (`load_settings`,
`load_models`, `process_sources`) minus Typer and Rich. Prints the summary JSON.

    python bench/child_process.py VIDEO --store DIR --sample-fps 4 --weights-dir W [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("--store", required=True)
    ap.add_argument("--sample-fps", type=float, default=4.0)
    ap.add_argument("--weights-dir", required=True)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    from faceid_jobs.config import load_settings
    from faceid_jobs.models import load_models
    from faceid_jobs.pipeline.process import process_sources
    from faceid_jobs.storage import open_store

    settings = load_settings(overrides={"store": a.store, "weights_dir": a.weights_dir,
                                        "device": a.device, "sample_fps": a.sample_fps})
    models = load_models(settings)
    summary = process_sources([a.video], settings, open_store(settings.store), models)
    print(json.dumps(summary.to_json()))


if __name__ == "__main__":
    main()
