"""Memory: peak RSS of `faceid-jobs process` must stay flat as the video grows.

Compares the clip re-encoded once with the clip looped (the same codec, MPEG-4
via OpenCV, both made once into bench/.cache), as whole commands on fresh
stores. Reuses the footage section's 10-minute runs when it ran; otherwise (and
under --quick, with a shorter loop) it runs them here.

The clip alone is one 30-s chunk, so one chunk runs; from ~1 minute of video
on, as many chunks run at once as there are workers, each with its model
activations, decoder and frame queue. That step is set by `workers`, not by
length, so the length target is judged from the clip looped 3× (every worker
busy) to the long video; clip ×1 → long is shown beside it.
"""

from __future__ import annotations

from typing import Any

from bench.sections.context import Context
from bench.sections.footage import AGAIN, FRESH, looped_video, run_mode

FLAT = 1.2  # the target: the long video's peak RSS within 20 % of the short one's
BUSY_LOOPS = 3  # the clip looped 3× (79 s, 3 chunks): every worker of a 2-core machine busy


def run(ctx: Context) -> dict[str, Any]:
    a = ctx.args
    loops = a.memory_loops or a.long_loops
    short = looped_video(a.clip, 1)
    busy = looped_video(a.clip, BUSY_LOOPS) if loops > BUSY_LOOPS else None
    long = looped_video(a.clip, loops)
    footage = ctx.section_results.get("footage", {}).get("modes", {})
    rates = [4.0] + ([0.0] if any(k == "10 min, every frame" for k in footage) else [])
    out: dict[str, Any] = {"loops": loops, "rates": {}}
    for fps in rates:
        label = "every frame" if fps <= 0 else f"{fps:g} fps"
        s = run_mode(ctx, short, fps, 1, [FRESH])
        done = footage.get(f"10 min, {label}") if loops == a.long_loops else None
        big = done if done and FRESH in done.get("systems", {}) else run_mode(ctx, long, fps, 1, [FRESH, AGAIN])
        b = run_mode(ctx, busy, fps, 1, [FRESH]) if busy is not None else None
        rss_short, rss_long = _peak(s), _peak(big)
        rss_busy = _peak(b) if b is not None else None
        growth = rss_long / rss_short if rss_short and rss_long else None
        busy_growth = rss_long / rss_busy if rss_busy and rss_long else None
        out["rates"][label] = {
            "short": {"video_seconds": s["video"]["seconds"], "peak_rss_mib": rss_short,
                      "wall_s": s["systems"].get(FRESH, {}).get("wall_s")},
            "long": {"video_seconds": big["video"]["seconds"], "peak_rss_mib": rss_long,
                     "wall_s": big["systems"].get(FRESH, {}).get("wall_s")},
            "busy": None if b is None else {"loops": BUSY_LOOPS, "video_seconds": b["video"]["seconds"],
                                            "peak_rss_mib": rss_busy},
            "growth": growth,
            "busy_growth": busy_growth,
            "target": {"target": f"peak RSS flat in video length ({label}): long / clip ×{BUSY_LOOPS} "
                                 "(every worker busy in both)", "value": busy_growth,
                       "goal": FLAT, "met": None if busy_growth is None else busy_growth <= FLAT},
            "errors": {**s.get("errors", {}), **big.get("errors", {}), **((b or {}).get("errors", {}))},
        }
    return out


def _peak(mode: dict[str, Any]) -> float | None:
    return mode["systems"].get(FRESH, {}).get("peak_rss_mib", {}).get("median")
