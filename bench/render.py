"""The report: one result dict (what bench/run.py writes as JSON) → Markdown. Pure."""

from __future__ import annotations

from typing import Any

from bench.common import fmt, fmt_ratio, fmt_stat, md_table

OURS = ("faceid-jobs, cold", "faceid-jobs", "faceid-jobs, again (nothing to do)")
REFS = ("naive loop", "InsightFace FaceAnalysis")


def render_footage(f: dict[str, Any]) -> list[str]:
    """Whole-command figures per video and rate, in-flow figures beside them, then the targets."""
    lines = ["", "## Footage: whole commands (wall, CPU, peak RSS of each process; higher video s/s is better)",
             "", "`in-flow` is what the command reports of itself: faceid-jobs' `--json` wall_seconds "
             "(model loading, store set-up and Prefect start-up excluded), the peers' loop seconds "
             "(model loading excluded). Ratios: the peer's whole-command wall / ours, run by run.", ""]
    rows = []
    for label, mode in f["modes"].items():
        vs = mode["video"]["seconds"]
        for name, r in mode["systems"].items():
            speed = "–" if name == OURS[2] else fmt_stat(r["video_s_per_s"])
            rows.append([
                label, name, fmt_stat(r["wall_s"]), speed, fmt_stat(r["cpu_s"], 1),
                fmt(r["cpu_s"]["median"] / vs), fmt_stat(r["peak_rss_mib"], 0),
                fmt_ratio(r.get(f"x {REFS[0]}")), fmt_ratio(r.get(f"x {REFS[1]}")),
                fmt_stat(r["inflow_wall_s"]), fmt_stat(r["inflow_video_s_per_s"]),
                r.get("frames_analysed", "–"), r.get("faces", "–"),
                "–" if r.get("others_cpu_share_max") is None else f"{r['others_cpu_share_max']:.0%}",
            ])
        for name, why in {**mode.get("missing", {}), **mode.get("errors", {})}.items():
            rows.append([label, name, f"not measured: {why}"] + [""] * 11)
    lines.append(md_table(["video, sampling", "system", "wall s", "video s / s", "CPU s", "CPU s / video s",
                           "peak RSS MiB", "× naive", "× InsightFace", "in-flow wall s",
                           "in-flow video s / s", "frames", "faces", "others' CPU (max)"], rows))
    lines += ["", "Commands (VIDEO, STORE and W stand for the paths above):", ""]
    seen = set()
    for mode in f["modes"].values():
        for name, cmd in mode.get("commands", {}).items():
            if name not in seen and name != OURS[0]:
                seen.add(name)
                lines.append(f"- {name}: `{cmd}`")
    lines += render_targets(f.get("targets", []))
    return lines


def render_targets(targets: list[dict[str, Any]],
                   heading: str = "Targets of the issue (medians of the fresh-store faceid-jobs rows):") -> list[str]:
    if not targets:
        return []
    rows = [[t["target"], fmt(t["value"]), f"{t.get('op') or ('≤' if 'flat' in t['target'] else '≥')} {t['goal']}",
             "–" if t["met"] is None else ("pass" if t["met"] else "FAIL")] for t in targets]
    return ["", heading, "",
            md_table(["target", "measured", "goal", "result"], rows)]


def _render_relabel(rl: dict[str, Any]) -> list[str]:
    return ["", "## Relabel (`faceid-jobs relabel --json` as a fresh process)", "",
            md_table(["stored faces", "record files", "identities", "labelled", "faces / s (relabel)",
                      "command wall s (incl. start-up)"],
                     [[f"{rl['faces']:,}", rl["record_files"], f"{rl['identities']:,}",
                       f"{rl['labelled_faces']:,}", fmt_stat(rl["faces_per_s"], 0),
                       fmt_stat(rl["command_wall_s"])]])]


def render_archive(a: dict[str, Any]) -> list[str]:
    """First runs (threads vs Dask), re-runs of the unchanged archive, peak RSS against videos, targets."""
    local = a["local"]
    n = local["videos"]
    lines = ["", f"## Archive scale: {n:,} short videos locally (whole commands; wall, CPU, peak RSS of each "
             "process)", "",
             "Generated clips of 1 s (5 frames of 96×96 noise, sampled at 1 fps), each its own fingerprint. "
             "First runs on fresh stores; re-runs on the store the threaded first run filled. "
             "Dask's peak RSS is its largest single process (scheduler or a worker), not their sum.", ""]
    rows = [[label, f"{r['videos']:,}", fmt(r["wall_s"], 1), fmt(r["videos_per_s"], 1), fmt(r["video_s_per_s"], 1),
             fmt(r["cpu_s"], 1), fmt(r["peak_rss_mib"], 0), fmt(r.get("inflow_wall_s"), 1)]
            for label, r in local["first_run"].items()]
    lines.append(md_table(["first run", "videos", "wall s", "videos / s", "video s / s", "CPU s", "peak RSS MiB",
                           "in-flow wall s"], rows))
    sizes = sorted(local["rerun_wall_s"], key=int)
    first_rss = local.get("first_run_peak_rss_mib", {})
    lines += ["", md_table(["videos", "first run peak RSS MiB", "re-run wall s", "re-run peak RSS MiB"],
                           [[f"{int(k):,}", fmt(first_rss.get(k), 0), fmt_stat(local["rerun_wall_s"][k]),
                             fmt_stat(local["rerun_peak_rss_mib"][k], 0)] for k in sizes])]
    lines.append(f"\nRe-run cost per unchanged local video beyond the fixed start-up: "
                 f"{fmt(local['per_unchanged_video_ms'], 3)} ms ((all − 1 video) / {n - 1:,}, fastest runs).")
    s3 = a.get("s3") or {}
    if "error" in s3:
        lines.append(f"\nS3: not measured: {s3['error']}")
    elif s3:
        fr = s3.get("first_run", {})
        lines += ["", f"S3 (moto on 127.0.0.1, archive and store in two buckets): {s3['videos']:,} videos, "
                  f"first run {fmt(fr.get('wall_s'), 1)} s ({fmt(fr.get('videos_per_s'), 1)} videos / s, peak RSS "
                  f"{fmt(fr.get('peak_rss_mib'), 0)} MiB); re-run of all, unchanged: "
                  f"{fmt_stat(s3['rerun_all_wall_s'])} s, of 1: {fmt_stat(s3['rerun_one_wall_s'])} s "
                  f"({fmt(s3['per_unchanged_video_ms'], 2)} ms per unchanged video)."]
    lines += ["", "Commands (ARCHIVE, STORE and W stand for the paths above):", ""]
    lines += [f"- {k}: `{v}`" for k, v in a.get("commands", {}).items()]
    return lines + render_targets(a.get("targets", []), "Targets of the issue:")


def render_memory(mm: dict[str, Any]) -> list[str]:
    lines = ["", f"## Peak RSS against video length (clip ×1, ×3 and ×{mm['loops']}, same codec, fresh stores)", "",
             "The clip alone is one chunk; from ×3 on every worker runs a chunk at once (its activations, "
             "decoder and queue): that step is set by `workers`, not by length.", ""]
    rows = []
    for label, r in mm["rates"].items():
        busy = r.get("busy") or {}
        rows.append([label, fmt(r["short"]["video_seconds"], 0), fmt(r["short"]["peak_rss_mib"], 0),
                     fmt(busy.get("video_seconds"), 0), fmt(busy.get("peak_rss_mib"), 0),
                     fmt(r["long"]["video_seconds"], 0), fmt(r["long"]["peak_rss_mib"], 0), fmt(r["growth"], 3),
                     fmt(r.get("busy_growth"), 3)])
    lines.append(md_table(["sampling", "×1 s", "peak RSS MiB", "×3 s", "peak RSS MiB", "long s", "peak RSS MiB",
                           "long / ×1", "long / ×3"], rows))
    return lines + render_targets([r["target"] for r in mm["rates"].values()])


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def render_people(p: dict[str, Any]) -> list[str]:
    """Clustering at scale (against the issue's targets), then the Friends method comparison."""
    sc = p["scale"]
    lines = ["", f"## People discovery at scale ({sc['faces']:,} synthetic faces, {sc['threads']} FAISS threads)",
             "", "`python -m bench.people scale` as one process: synthetic face-like tracks of 1–8 faces, "
             "summarised a chunk at a time and clustered from scratch (k-NN graph + Chinese whispers), then "
             f"{sc['added_faces']:,} faces added incrementally. From scratch = summarise + k-NN + cluster "
             "(generating the synthetic faces excluded); wall, CPU and peak RSS are the whole process's, "
             "measured from outside.", ""]
    if "stored_videos" in sc:
        lines += [f"The incremental run is a whole discovery on a store: the from-scratch result stored as "
                  f"a people version ({sc['tracks']:,} tracks of {sc['stored_videos']:,} catalogued videos, "
                  f"{sc['stored_record_files']:,} record files listed), {sc['added_files']} new videos' "
                  "record files read, clustered against the known people, the next version published.", ""]
    lines.append(md_table(
        ["faces", "tracks", "identities", "people found", "k-NN", "from scratch s", "summarise s", "k-NN s",
         "whispers s",
         "identities split", "people mixed", "command wall s", "CPU s", "peak RSS MiB"],
        [[f"{sc['faces']:,}", f"{sc['tracks']:,}", f"{sc['identities']:,}", f"{sc['people_found']:,}",
          sc["knn"] + (f" (nprobe {sc['nprobe']})" if sc["knn"] == "IVF" else ""), fmt(sc["scratch_s"], 1),
          fmt(sc["summarise_s"], 1), fmt(sc["knn_s"], 1), fmt(sc["cluster_s"] - sc["knn_s"], 1),
          f"{sc['identities_split']:,}", f"{sc['people_mixed']:,}",
          fmt(sc["command_wall_s"], 1), fmt(sc["command_cpu_s"], 1), fmt(sc["peak_rss_mib"], 0)]]))
    lines += ["", md_table(["added faces", "added tracks", "incremental s (load, read, cluster, publish)",
                            "its CPU s", "others' CPU meanwhile", "added tracks joining their person"],
                           [[f"{sc['added_faces']:,}", f"{sc['added_tracks']:,}", fmt(sc["incremental_s"]),
                             fmt(sc.get("incremental_cpu_s")), _share(sc.get("incremental_others_cpu_share")),
                             fmt(sc["added_joined_their_person"], 4)]])]
    if sc.get("others_cpu_share") is not None:
        lines += ["", f"Others' CPU over the whole command: {_share(sc['others_cpu_share'])} of all cores "
                  "(the machine was shared: above a few per cent the times above were slowed by someone else)."]
    lines += render_targets(p.get("targets", []), "Targets of the issue (2 cores):")
    if any(t["met"] is None for t in p.get("targets", [])):
        lines.append("\n`–`: measured below the size the target names (`--people-faces 1000000` judges it).")
    lines += ["", "Commands:", ""] + [f"- {k}: `{v}`" for k, v in p.get("commands", {}).items()]
    fr = p.get("friends")
    if fr:
        lines += ["", f"### Friends clip: method × threshold ({fr['faces']} faces at 4 fps, {fr['tracks']} tracks, "
                  f"{fr['labelled_faces']} faces labelled by portrait and shot table, "
                  f"{fr['labelled_pairs']:,} pairs; command {fmt(fr['command_wall_s'], 1)} s)", "",
                  "Discovery as shipped (per track, Chinese whispers), people of ≥ 3 faces against the portraits:",
                  ""]
        lines.append(md_table(
            ["threshold", "k", "people", "people ≥ 3 faces", "characters split", "characters missing",
             "faces not their person's character", "pair accuracy"],
            [[r["threshold"], r["k"], r["people"], r["people_3_faces"], ", ".join(r["split"]) or "–",
              ", ".join(r["missing"]) or "–", r["impure_faces"], fmt(r["pair_accuracy"], 4)] for r in fr["sweep"]]))
        acc = fr["pair_accuracy_k10"]
        methods = list(dict.fromkeys(k.rsplit("@", 1)[0] for k in acc))
        thresholds = list(dict.fromkeys(k.rsplit("@", 1)[1] for k in acc))
        lines += ["", "Pair accuracy by method (k = 10; `avg-link-faces`: plain average linkage of the faces, "
                  "no tracks: the baseline to beat):", ""]
        lines.append(md_table(["threshold", *methods],
                              [[t, *(fmt(acc.get(f"{m}@{t}"), 4) for m in methods)] for t in thresholds]))
    elif p.get("friends_error"):
        lines.append(f"\nFriends sweep failed: `{p['friends_error']}`")
    return lines


def _render_search(sr: dict[str, Any]) -> list[str]:
    """The search and merge tables (also for result files of earlier harness versions)."""
    ip = sr.get("index_params", {})
    k, above_k = sr.get("k", 20), sr.get("above_threshold_k", 128)
    what = "synthetic face records" if sr.get("data") else "synthetic unit vectors"
    lines = ["", f"## Search (single query, top-{k}; {what}, encrypted shards)", "",
             f"Index parameters: exact up to {ip.get('exact_max')} vectors per shard, IVF "
             f"({ip.get('ivf_codec')}, nprobe {ip.get('nprobe')}) above; FAISS OpenMP threads "
             f"{sr['faiss_omp_threads']}. Data: {sr.get('data', 'uniform random unit vectors')}.", ""]
    rows = []
    for n, e in sr["sizes"].items():
        rows.append([f"{int(n):,}", f"{e.get('shards')} {'/'.join(e.get('shard_kinds', []))}".strip(),
                     fmt(e["faiss_floor"]["p50_ms"], 3), fmt(e.get("faiss_same_kind", {}).get("p50_ms"), 3),
                     fmt(e["index_search"]["p50_ms"], 3), fmt(e["index_search"]["p95_ms"], 3),
                     fmt(e["search_index_with_hits"]["p50_ms"], 3),
                     fmt(e["search_index_with_hits"]["p95_ms"], 3), fmt(e["recall_at_20_vs_exact"], 3),
                     fmt(e.get("above_threshold_found_share", e.get("source_found_share")), 3),
                     fmt_stat(e["open_index_s"], 3), fmt_stat(e.get("cli_cold_wall_s")),
                     fmt_stat(e.get("cli_peak_rss_mib"), 0)])
    lines.append(md_table(["vectors", "shards", "FAISS flat p50 ms", "FAISS same kind p50 ms", "index p50 ms",
                           "p95 ms", "search_index p50 ms", "p95 ms", f"recall@{k}",
                           "above 0.4 found", "open_index s", "cold CLI s", "CLI peak RSS MiB"], rows))
    if sr.get("above_threshold_k"):
        lines.append(f"\nabove 0.4 found: share of the stored vectors with cosine ≥ {sr.get('threshold', 0.4)} to "
                     f"the query (its identity's faces) among the index's top-{above_k}, against exact search.")
    else:  # result files of earlier harness versions
        lines.append("\nabove 0.4 found: here the share of queries whose source vector was returned.")
    for n, e in sr["sizes"].items():
        if e.get("cli_error"):
            lines.append(f"\nCold CLI over {int(n):,} failed: `{e['cli_error']}`")
    if sr.get("cli"):
        lines.append(f"\nCold CLI: {sr['cli']}")
    merges = {n: e for n, e in sr["sizes"].items() if e.get("merge")}
    if merges:
        lines += ["", "Merge into encrypted shards (vectors per second; floors over the same vectors and bytes):", ""]
        rows = []
        for n, e in merges.items():
            m = e["merge"]
            rows.append([f"{int(n):,}", fmt(m["merge_s"], 1), fmt(m["merge_vectors_per_s"], 0),
                         fmt(m.get("read_records_vectors_per_s"), 0), fmt(m.get("faiss_build_vectors_per_s"), 0),
                         fmt(m.get("faiss_add_vectors_per_s"), 0), fmt(m.get("aes_gcm_vectors_per_s"), 0),
                         fmt(m.get("aes_gcm_mib_per_s"), 0), fmt(e.get("shard_mib"), 0)])
        lines.append(md_table(["vectors", "merge s", "merge", "decrypt records", "FAISS train + add",
                               "FAISS add", "AES-GCM", "AES-GCM MiB/s", "shards MiB"], rows))
    else:  # result files of earlier harness versions
        lines.append("\nMerge vectors/s: " + ", ".join(f"{int(n):,}: {fmt(e.get('merge_vectors_per_s'), 0)}"
                                                      for n, e in sr["sizes"].items()))
    sweeps = {n: e["nprobe_sweep"] for n, e in sr["sizes"].items() if e.get("nprobe_sweep")}
    for n, sweep in sweeps.items():
        lines += ["", f"nprobe against recall over {int(n):,} vectors:", ""]
        lines.append(md_table(["nprobe", "index p50 ms", "p95 ms", f"recall@{k}", "above 0.4 found"],
                              [[p, fmt(v["index_search"]["p50_ms"], 3), fmt(v["index_search"]["p95_ms"], 3),
                                fmt(v["recall_at_20_vs_exact"], 3), fmt(v["above_threshold_found_share"], 3)]
                               for p, v in sweep.items()]))
    if sr.get("ivf_in_memory"):
        lines += ["", "IVF built in memory regardless of exact_max (uniform vectors: no clusters, the worst case):",
                  ""]
        lines.append(md_table(["data", "vectors", "kind", "nprobe", "build s", "p50 ms", f"recall@{k}",
                               "above 0.4 found"],
                              [[r["data"], f"{r['vectors']:,}", r["kind"], r["nprobe"], fmt(r["build_s"], 1),
                                fmt(r["search"]["p50_ms"], 3), fmt(r["recall_at_20_vs_exact"], 3),
                                fmt(r["above_threshold_found_share"], 3)] for r in sr["ivf_in_memory"]]))
    return lines


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# faceid-jobs benchmark — {results['date']} on {m['host']}",
        "",
        f"{m['cpu_model']}, {m['cores_usable']} cores, {m['memory_gib']} GiB; onnxruntime "
        f"{m['onnxruntime']} ({results['device']}); OpenCV {m['opencv']}; FAISS {m['faiss']}; "
        f"peers in their own venvs (bench/peers/*/requirements.txt). Runs per figure: {results['runs']}; "
        "figures are median (min–max).",
        f"GPU: {results['gpu']}",
        "",
        f"Command: `{results['command']}`",
    ]
    if results.get("note"):
        lines += ["", f"**{results['note']}**"]
    s = results["sections"]
    failed = {k: v for k, v in s.items() if "error" in v}
    s = {k: v for k, v in s.items() if "error" not in v}
    for name, v in failed.items():
        lines += ["", f"## {name}: FAILED", "", f"`{v['error']}` (traceback in the JSON)"]
    if "footage" in s:
        lines += render_footage(s["footage"])
    if "batch" in s:
        b = s["batch"]
        lines += ["", f"## Faces per second against batch size ({b['faces']} faces from the clip)", ""]
        rows = []
        for size in b["embed"]:
            rows.append([size, fmt_stat(b["embed"][size], 1), fmt_stat(b["embed_raw_session"][size], 1),
                         fmt_stat(b["liveness"].get(size), 1)])
        lines.append(md_table(["batch", "embed (ArcFace.embed)", "embed graph only", "liveness (2 models)"],
                              rows))
        lines.append(f"\nLiveness measured through: {b['liveness_api']}.")
    for name, render_section in (("search", _render_search), ("memory", render_memory),
                                 ("relabel", _render_relabel), ("archive", render_archive),
                                 ("people", render_people)):
        if name in s:
            lines += render_section(s[name])
    if "profile" in s:
        p = s["profile"]
        lines += ["", f"## Profile: each stage alone ({p['frames']} frames, "
                  f"{p['faces_per_frame']:.2f} faces/frame)", ""]
        rows = [[k, fmt_stat(v) if isinstance(v, dict) else v] for k, v in p["stages"].items()]
        lines.append(md_table(["stage", "median (min–max)"], rows))
        share = p["share_at_every_frame"]
        lines.append("\nSequential cost at every frame: "
                     f"{p['sequential_ms_per_frame_at_every_frame']:.1f} ms/frame = "
                     f"{p['sequential_video_s_per_s_at_every_frame']:.2f} video s/s; shares: "
                     + ", ".join(f"{k} {v:.0%}" for k, v in share.items()) + ".")
        if "overlap_gain" in p:
            lines.append(f"Pipeline measured {p['pipeline_video_s_per_s_at_every_frame']:.2f} video s/s "
                         f"= {p['overlap_gain']:.2f}× the sequential sum.")
        lines += ["", md_table(["raw-session experiment", "ms, median (min–max)"],
                               [[k, fmt_stat(v)] for k, v in p["experiments"].items()])]
        rl = p.get("rect_letterbox")
        if rl:
            ag = rl["agreement"]
            lines.append(
                f"\nDetector with a rectangular letterbox (naive pre/post-processing, {rl['frames']} "
                f"frames): {fmt_stat(rl['rect_ms_per_frame'])} ms/frame vs "
                f"{fmt_stat(rl['square_ms_per_frame'])} square; faces {ag['faces_ours']} vs "
                f"{ag['faces_ref']}, unmatched {ag['unmatched_faces']}, "
                f"largest box difference {fmt(ag['bbox_max_abs_diff_px'])} px, "
                f"{fmt(ag['bbox_within_1px_share'], 3)} of boxes within 1 px.")
        cp = p.get("analyse_chunk_cprofile")
        if cp:
            lines += ["", f"`analyse_chunk` main thread under cProfile ({cp['frames']} frames, every frame, "
                      f"{cp['wall_s']:.1f} s wall = {cp['video_s_per_s']:.2f} video s/s; "
                      "ONNX `run` = inference, `get` = waiting for decoded frames):", ""]
            lines.append(md_table(["function", "calls", "self s", "cumulative s"],
                                  [[r["function"], r["calls"], fmt(r["self_s"]), fmt(r["cum_s"])]
                                   for r in cp["top_self_time"][:10]]))
            runs = ", ".join(f"{k} {v:.2f} s ({cp['session_run_calls'][k]} calls)"
                             for k, v in cp["session_run_s"].items())
            lines.append(f"\nInference inside that run, by model: {runs}; "
                         f"other main-thread time {cp['wall_s'] - sum(cp['session_run_s'].values()):.2f} s.")
    loads = ", ".join(f"{k} {v:.2f}" for k, v in results.get("load_seconds", {}).items())
    if loads:
        lines += ["", f"Model load seconds (in-process sections): {loads}"]
    return "\n".join(lines) + "\n"
