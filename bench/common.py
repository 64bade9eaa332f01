"""Shared helpers of the benchmark harness: statistics, machine facts, tables.

Nothing here asserts a speed: the harness measures and reports, the README
explains what each figure means.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEFAULT_CLIP = SHARED / "media" / "friends" / "in_video.mp4"
DEFAULT_PORTRAIT = SHARED / "media" / "friends" / "faces" / "Ross.png"
# people/test photo -> identities in it (people/train folder names; ../shared/media/README.md)
PEOPLE_TEST_TRUTH = {
    "obama1.jpg": {"obama"},
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama_and_biden.jpg": {"obama", "biden"},
}


def default_weights_dir() -> Path:
    """weights/files (what `make weights` links) when it exists, else ../shared/weights."""
    for candidate in (REPO / "weights" / "files", SHARED / "weights"):
        if candidate.is_dir():
            return candidate.resolve()
    return SHARED / "weights"


def stats(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min, max and count of repeated measurements."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/max latency of single calls, in milliseconds."""
    xs = sorted(samples_s)
    if not xs:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan"), "n": 0}

    def pick(q: float) -> float:
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000.0

    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "max_ms": xs[-1] * 1000.0, "n": len(xs)}


def ratio_stats(ours: Sequence[float], ref: Sequence[float]) -> dict[str, float | int]:
    """Per-run ratios ours[i] / ref[i] (runs were interleaved, so pair them)."""
    return stats([a / b for a, b in zip(ours, ref, strict=False) if b > 0])


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None or x != x:  # NaN
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def fmt_stat(s: dict[str, Any] | None, digits: int = 2) -> str:
    """`median (min–max)` of a `stats` dict."""
    if not s or not s.get("n"):
        return "–"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def fmt_ratio(s: dict[str, Any] | None) -> str:
    if not s or not s.get("n"):
        return "–"
    return f"{s['median']:.2f}×"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # optional packages
        return None
    return str(getattr(mod, "__version__", "?"))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    import cv2
    import onnxruntime as ort

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores_usable": cores,
        "cpu_count": os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "onnxruntime_providers_available": ort.get_available_providers(),
        "onnxruntime_device": ort.get_device(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "numpy": _version("numpy"),
        "faiss": _version("faiss"),
        "pyarrow": _version("pyarrow"),
        "insightface": _installed_version("insightface"),
        "git_commit": _git_commit(),
    }


def _installed_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def video_facts(path: Path) -> dict[str, Any]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return {
            "path": str(path),
            "fps": fps,
            "frames": frames,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "seconds": frames / fps if fps else 0.0,
            "bytes": path.stat().st_size,
        }
    finally:
        cap.release()


def _cpu_times() -> tuple[int, int]:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]), idle


def cpu_mark() -> tuple[int, int] | None:
    """All cores' (total, idle) clock ticks now, for `others_share` (None where /proc/stat is missing)."""
    try:
        return _cpu_times()
    except (OSError, ValueError, IndexError):
        return None


def others_share(before: tuple[int, int] | None, own_cpu_s: float, wall_s: float) -> float | None:
    """Share of all cores that processes other than ours kept busy since `before` (a `cpu_mark`)."""
    after = cpu_mark()
    if before is None or after is None or wall_s <= 0:
        return None
    busy = ((after[0] - before[0]) - (after[1] - before[1])) / os.sysconf("SC_CLK_TCK")
    return max(0.0, busy - own_cpu_s) / (wall_s * (os.cpu_count() or 1))


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Share of all cores busy over `seconds` (None where /proc/stat is missing)."""
    try:
        t1, i1 = _cpu_times()
        time.sleep(seconds)
        t2, i2 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i2 - i1) / (t2 - t1) if t2 > t1 else None


def wait_idle(max_wait_s: float, threshold: float = 0.25) -> float | None:
    """Wait (up to `max_wait_s`) until other processes leave the CPU; returns the last busy share."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy()
    warned = False
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        if not warned:
            log(f"CPU {busy:.0%} busy with other processes: waiting up to {max_wait_s:.0f} s for quiet")
            warned = True
        time.sleep(2.0)
        busy = cpu_busy()
    return busy


def log(msg: str) -> None:
    """Progress on stderr (the Markdown report goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
