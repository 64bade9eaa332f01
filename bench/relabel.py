"""Relabel speed: label a synthetic archive's stored faces with a synthetic gallery, through the CLI.

    .venv/bin/python bench/relabel.py --faces 100000 --identities 1000

Writes `--faces` random 512-d face records (chunk files of `--rows-per-chunk` faces, as `process`
stores them, encrypted) into a fresh store, enrols `--identities` random identities, then times
`faceid-jobs relabel --json` (a separate process, as a user runs it; no video exists at all) and prints
its report plus the wall time of the whole command. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--rows-per-chunk", type=int, default=250)
    parser.add_argument("--weights-dir", default=os.environ.get("FACEID_JOBS_WEIGHTS_DIR", str(REPO.parent / "shared"
                                                                                            / "weights")))
    args = parser.parse_args()

    from bench.synthetic import make_index_store, unit_vectors
    from faceid_jobs.config import Settings
    from faceid_jobs.identity.gallery import enroll
    from faceid_jobs.models import resolve_model_path
    from faceid_jobs.models.runtime import ModelFile
    from faceid_jobs.photo import PhotoFace
    from faceid_jobs.workspace import open_workspace

    root = Path(tempfile.mkdtemp(prefix="faceid-bench-relabel-"))
    settings = Settings(store=str(root / "store"), key_file=str(root / "key.json"), weights_dir=args.weights_dir)
    embedder = ModelFile.from_path(resolve_model_path(settings, "embedder")).id
    ws = open_workspace(settings, create_key=True)
    records = make_index_store(ws, args.faces, embedder_id=embedder, rows_per_chunk=args.rows_per_chunk)
    # Identities: half are people of the archive (a stored face each), half strangers.
    rng = np.random.default_rng(3)
    known = rng.choice(args.faces, args.identities // 2, replace=False)
    vectors = np.concatenate([records.vectors[known], unit_vectors(args.identities - len(known), 512, 11)])
    face = PhotoFace("p.jpg", (0.0, 0.0, 1.0, 1.0), 0.9, 0.9, 0.99, 1)
    enroll(ws, {f"person-{i:05d}": [(face, v)] for i, v in enumerate(vectors)}, embedder)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")}
    env |= {"FACEID_JOBS_STORE": settings.store, "FACEID_JOBS_KEY_FILE": settings.key_file,
            "FACEID_JOBS_WEIGHTS_DIR": args.weights_dir}
    command = [str(Path(sys.executable).parent / "faceid-jobs"), "relabel", "--json"]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    finally:
        wall = time.perf_counter() - started
        shutil.rmtree(root, ignore_errors=True)
    report = json.loads(result.stdout)
    print(json.dumps({"faces": args.faces, "identities": args.identities, "record_files": records.chunks,
                      "relabel": report, "command_wall_seconds": round(wall, 2),
                      "faces_per_second_including_start_up": round(args.faces / wall, 1),
                      "cpu_count": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
