"""Memory: peak RSS of `faceid-jobs process` must stay flat as the video grows.

Compares the clip re-encoded once with the clip looped (the same codec, MPEG-4
via OpenCV, both made once into bench/.cache), as whole commands on fresh
stores. Reuses the footage section's 10-minute runs when it ran; otherwise (and
under --quick, with a shorter loop) it runs them here.
"""

from __future__ import annotations

from typing import Any

from bench.sections.context import Context
from bench.sections.footage import AGAIN, FRESH, looped_video, run_mode

FLAT = 1.2  # the target: the long video's peak RSS within 20 % of the short one's


def run(ctx: Context) -> dict[str, Any]:
    a = ctx.args
    loops = a.memory_loops or a.long_loops
    short = looped_video(a.clip, 1)
    long = looped_video(a.clip, loops)
    footage = ctx.section_results.get("footage", {}).get("modes", {})
    rates = [4.0] + ([0.0] if any(k == "10 min, every frame" for k in footage) else [])
    out: dict[str, Any] = {"loops": loops, "rates": {}}
    for fps in rates:
        label = "every frame" if fps <= 0 else f"{fps:g} fps"
        s = run_mode(ctx, short, fps, 1, [FRESH])
        done = footage.get(f"10 min, {label}") if loops == a.long_loops else None
        big = done if done and FRESH in done.get("systems", {}) else run_mode(ctx, long, fps, 1, [FRESH, AGAIN])
        rss_short = s["systems"].get(FRESH, {}).get("peak_rss_mib", {}).get("median")
        rss_long = big["systems"].get(FRESH, {}).get("peak_rss_mib", {}).get("median")
        growth = rss_long / rss_short if rss_short and rss_long else None
        out["rates"][label] = {
            "short": {"video_seconds": s["video"]["seconds"], "peak_rss_mib": rss_short,
                      "wall_s": s["systems"].get(FRESH, {}).get("wall_s")},
            "long": {"video_seconds": big["video"]["seconds"], "peak_rss_mib": rss_long,
                     "wall_s": big["systems"].get(FRESH, {}).get("wall_s")},
            "growth": growth,
            "target": {"target": f"peak RSS flat in video length ({label}): long / short", "value": growth,
                       "goal": FLAT, "met": None if growth is None else growth <= FLAT},
            "errors": {**s.get("errors", {}), **big.get("errors", {})},
        }
    return out
