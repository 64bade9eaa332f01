"""`faceid-jobs relabel` over a synthetic archive (bench/relabel.py, one fresh store per run)."""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.common import (
    REPO,
    log,
    stats,
)
from bench.sections.context import Context
from bench.timing import run_command


def run(ctx: Context) -> dict[str, Any]:
    """`faceid-jobs relabel` over a synthetic archive (bench/relabel.py, one fresh store per run)."""
    a = ctx.args
    faces, identities = (20_000, 200) if a.quick else (100_000, 1000)
    runs = []
    for r in range(a.runs):
        log(f"relabel: {faces:,} stored faces against {identities:,} identities, run {r + 1}/{a.runs}")
        m = run_command([sys.executable, str(REPO / "bench" / "relabel.py"), "--faces", str(faces),
                         "--identities", str(identities), "--weights-dir", str(a.weights_dir)],
                        env=ctx.child_env())
        if not m.ok:
            return {"error": m.error_line()}
        runs.append(json.loads(m.stdout) | {"peak_rss_mib": m.peak_rss_mib})
    return {
        "faces": faces, "identities": identities, "record_files": runs[0]["record_files"],
        "labelled_faces": runs[0]["relabel"]["labelled_faces"],
        "faces_per_s": stats([x["relabel"]["faces_per_second"] for x in runs]),
        "command_wall_s": stats([x["command_wall_seconds"] for x in runs]),
        "peak_rss_mib": stats([x["peak_rss_mib"] for x in runs]),
    }
