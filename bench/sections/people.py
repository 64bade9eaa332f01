"""People discovery: clustering at scale and the Friends method comparison, each as a whole process.

    python -m bench.people scale --faces N --add 10000 --threads 2     (N: --people-faces, default 1,000,000)
    python -m bench.people friends --weights-dir W

`scale` generates synthetic face-like tracks, clusters them from scratch, stores the result as a people
version, then adds 10,000 faces as record files of new videos through the incremental discovery a user runs
(load, read, cluster, publish), and prints its figures as JSON; the harness measures the process from outside (wall,
CPU, peak RSS) like every other command. `friends` processes the clip at 4 fps once and sweeps
method × threshold on its faces (about 10 s). The issue's targets are judged only at their sizes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.common import log
from bench.sections.context import Context
from bench.sections.footage import measure
from bench.timing import Measured

TARGET_FACES = 1_000_000
SCRATCH_GOAL_S = 600.0  # from scratch, 1M faces: ≤ 10 minutes
RSS_GOAL_GIB = 4.0  # ... and ≤ 4 GB
ADD_FACES = 10_000
ADD_GOAL_S = 10.0  # an incremental run adding 10k faces: ≤ 10 s
THREADS = 2  # the targets are for 2 cores


def scale_command(faces: int, add: int = ADD_FACES, threads: int = THREADS) -> list[str]:
    """The scale bench as a user runs it (from the repository root)."""
    return [sys.executable, "-m", "bench.people", "scale", "--faces", str(faces), "--add", str(add),
            "--threads", str(threads)]


def scale_figures(out: dict[str, Any], m: Measured, faces: int, add: int = ADD_FACES) -> dict[str, Any]:
    """The section's figures from the script's JSON and the outside measurement of its process.

    `faces` and `add` are the sizes asked for: the script draws which tracks are added at random, so the
    faces it reports come out a little above or below them (the targets are judged on the sizes asked for).
    """
    return {
        "faces_asked": faces, "add_asked": add,
        "faces": out["faces"], "tracks": out["nodes"], "identities": out["identities"],
        "people_found": out["people_found"], "knn": "IVF" if out["ivf"] else "exact", "nprobe": out["nprobe"],
        "threshold": out["threshold"], "threads": out["threads"],
        "scratch_s": out["scratch_seconds"], "summarise_s": out["summarise_seconds"],
        "knn_s": out["knn_seconds"], "generate_s": out["generate_seconds"],
        "cluster_s": out["cluster_seconds"],  # k-NN graph + Chinese whispers
        "scratch_rss_gib": out["scratch_rss_gb"], "store_s": out["store_seconds"],
        "stored_videos": out["stored_videos"], "stored_record_files": out["stored_record_files"],
        "added_faces": out["added_faces"], "added_files": out["added_files"], "added_tracks": out["added_nodes"],
        "incremental_s": out["incremental_seconds"], "incremental_cpu_s": out.get("incremental_cpu_seconds"),
        "incremental_others_cpu_share": out.get("incremental_others_cpu_share"),
        "added_joined_their_person": out["added_joined_their_person"],
        "identities_split": out["identities_split"], "people_mixed": out["people_mixed"],
        "command_wall_s": m.wall_s, "command_cpu_s": m.cpu_s, "peak_rss_mib": m.peak_rss_mib,
    }


def scale_targets(f: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's scale targets; `met` is None (neither pass nor fail) below the size a target names.

    The incremental target is judged only on a full-size archive too: adding to fewer people is faster.
    """
    full = f["faces_asked"] >= TARGET_FACES
    add = full and f["add_asked"] >= ADD_FACES
    rss_gib = f["peak_rss_mib"] / 1024.0
    return [
        {"target": f"{TARGET_FACES:,} faces from scratch: seconds", "value": f["scratch_s"], "op": "≤",
         "goal": SCRATCH_GOAL_S, "met": f["scratch_s"] <= SCRATCH_GOAL_S if full else None},
        {"target": f"{TARGET_FACES:,} faces from scratch: peak RSS GiB", "value": rss_gib, "op": "≤",
         "goal": RSS_GOAL_GIB, "met": rss_gib <= RSS_GOAL_GIB if full else None},
        {"target": f"+{ADD_FACES:,} faces to {TARGET_FACES:,}, incremental: seconds",
         "value": f["incremental_s"], "op": "≤", "goal": ADD_GOAL_S,
         "met": f["incremental_s"] <= ADD_GOAL_S if add else None},
    ]


def friends_figures(out: dict[str, Any], m: Measured) -> dict[str, Any]:
    """The Friends sweep without the per-person breakdown (kept small for the report)."""
    sweep = [{k: v for k, v in row.items() if k != "persons"} for row in out["sweep"]]
    return {"faces": out["faces"], "tracks": out["nodes"], "labelled_faces": out["labelled_faces"],
            "labelled_pairs": out["labelled_pairs"], "label_counts": out["label_counts"], "sweep": sweep,
            "pair_accuracy_k10": out["pair_accuracy_k10"], "command_wall_s": m.wall_s,
            "peak_rss_mib": m.peak_rss_mib}


def _json_of(m: Measured, what: str) -> dict[str, Any]:
    if not m.ok:
        raise RuntimeError(f"{what}: {m.error_line()}")
    return json.loads(m.stdout)


def run(ctx: Context) -> dict[str, Any]:
    """The scale bench at --people-faces faces (+10k incremental), then the Friends sweep."""
    a = ctx.args
    cmd = scale_command(a.people_faces)
    log(f"people: scale, {a.people_faces:,} faces from scratch + {ADD_FACES:,} incremental, {THREADS} threads")
    m, others = measure(cmd, ctx.child_env(), timeout=3600)
    scale = scale_figures(_json_of(m, "bench.people scale"), m, a.people_faces) | {"others_cpu_share": others}
    out: dict[str, Any] = {"scale": scale, "targets": scale_targets(scale),
                           "commands": {"scale": " ".join(["python", *cmd[1:]])}}
    fcmd = [sys.executable, "-m", "bench.people", "friends", "--weights-dir", str(a.weights_dir)]
    log("people: Friends clip, method × threshold")
    try:
        fm, fothers = measure(fcmd, ctx.child_env(), timeout=1800)
        out["friends"] = friends_figures(_json_of(fm, "bench.people friends"), fm) | {"others_cpu_share": fothers}
        out["commands"]["friends"] = " ".join(["python", *fcmd[1:]])
    except (RuntimeError, ValueError, KeyError) as exc:  # the scale figures stand without it
        out["friends_error"] = f"{type(exc).__name__}: {exc}"
    return out
