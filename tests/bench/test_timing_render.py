"""The bench harness's pure parts: the timing helper, the targets and the Markdown renderer.

No speed is asserted: these check that a command's figures are the command's own
(exit code, output, CPU and memory it really used) and that the report shows them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.peers.sampling import sampled_frames as peer_sampled_frames
from bench.render import render, render_footage
from bench.sections.footage import FRESH, NAIVE, PEER, targets
from bench.timing import Span, run_command
from faceid_jobs.video.chunks import sampled_frames

ALLOCATE_200_MIB_AND_SPIN = (
    "import time\n"
    "b = bytearray(200 * 2**20)\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"  # touch every page: resident, not just reserved
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.2: pass\n"
    "print('done')\n"
)


def test_run_command_reports_the_commands_own_output_cpu_and_peak_rss():
    # the harness itself holds a large buffer: the child's figure must not include it
    ballast = np.ones(64 * 2**20, np.uint8)
    m = run_command([sys.executable, "-c", ALLOCATE_200_MIB_AND_SPIN])
    assert ballast.sum() == 64 * 2**20
    assert m.ok and m.returncode == 0
    assert m.stdout.strip() == "done"
    assert 200 <= m.peak_rss_mib < 200 + 150  # the buffer, plus an interpreter
    assert m.cpu_s >= 0.2 and m.cpu_s == m.user_s + m.sys_s
    assert m.wall_s >= 0.2
    assert set(m.figures()) == {"wall_s", "user_s", "sys_s", "cpu_s", "peak_rss_mib", "returncode"}


def test_run_command_failure_gives_exit_code_and_last_stderr_line():
    m = run_command([sys.executable, "-c", "import sys; print('a\\nlast words', file=sys.stderr); sys.exit(3)"])
    assert not m.ok and m.returncode == 3
    assert m.error_line() == "last words"
    missing = run_command(["/nonexistent/program"])
    assert missing.returncode == 127 and "cannot start" in missing.error_line()


def test_span_measures_a_block():
    with Span() as s:
        sum(range(1000))
    assert s.seconds > 0


def test_peers_sample_the_same_frames_as_faceid_jobs():
    for count, fps, rate in ((632, 23.976, 4.0), (632, 23.976, 0.0), (100, 30.0, 7.0), (50, 25.0, 25.0)):
        assert np.array_equal(peer_sampled_frames(0, count, fps, rate), sampled_frames(0, count, fps, rate))


def test_peers_load_the_sampling_grid_without_the_faceid_jobs_package():
    # As a peer script runs it: from its own folder, the project package never imported.
    probe = ("import sys; sys.path.insert(0, 'bench/peers'); from sampling import sampled_frames; "
             "print(len(sampled_frames(0, 632, 23.976, 4.0)), 'faceid_jobs' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == [str(len(sampled_frames(0, 632, 23.976, 4.0))), "False"]


def _stat(v: float) -> dict:
    return {"median": v, "min": v, "max": v, "n": 1}


def _system(wall: float, video_s: float, **extra) -> dict:
    return {"wall_s": _stat(wall), "cpu_s": _stat(wall * 1.5), "peak_rss_mib": _stat(400.0),
            "video_s_per_s": _stat(video_s / wall), "inflow_wall_s": _stat(wall / 2),
            "inflow_video_s_per_s": _stat(2 * video_s / wall), "frames_analysed": 632, "faces": 1200,
            "others_cpu_share_max": 0.05, **extra}


def _modes() -> dict:
    return {
        "clip, every frame": {
            "video": {"seconds": 26.4}, "sample_fps": 0.0, "missing": {}, "errors": {"naive loop": "boom"},
            "commands": {FRESH: "faceid-jobs process VIDEO --store STORE --json --sample-fps 0"},
            "systems": {FRESH: _system(20.0, 26.4, **{f"x {NAIVE}": _stat(2.5), f"x {PEER}": _stat(1.2)}),
                        PEER: _system(24.0, 26.4)},
        },
        "clip, 4 fps": {
            "video": {"seconds": 26.4}, "sample_fps": 4.0, "missing": {PEER: "no venv"}, "errors": {},
            "systems": {FRESH: _system(4.0, 26.4, **{f"x {NAIVE}": _stat(3.0)})},
        },
    }


def test_targets_pass_fail_and_missing():
    t = {x["target"]: x for x in targets(_modes())}
    assert t["every frame (clip): × naive"]["met"] is True
    assert t["every frame (clip): × InsightFace"]["met"] is False  # 1.2 < 1.5
    assert t["4 fps (clip): × InsightFace"]["met"] is None  # not measured: neither pass nor fail
    assert t["4 fps (clip): × real time"]["value"] == 26.4 / 4.0 and t["4 fps (clip): × real time"]["met"]


def test_render_shows_rows_ratios_failures_targets_and_the_note():
    modes = _modes()
    lines = "\n".join(render_footage({"modes": modes, "targets": targets(modes)}))
    assert "| clip, every frame | faceid-jobs | 20.00 | 1.32 |" in lines
    assert "2.50×" in lines and "1.20×" in lines
    assert "naive loop | not measured: boom" in lines and "not measured: no venv" in lines
    assert "| every frame (clip): × InsightFace | 1.20 | ≥ 1.5 | FAIL |" in lines
    assert "`faceid-jobs process VIDEO --store STORE --json --sample-fps 0`" in lines
    report = render({
        "date": "2026-12-01", "note": "preliminary, loaded machine", "runs": 1, "device": "cpu", "gpu": "none",
        "command": "python bench/run.py --quick",
        "machine": {"host": "h", "cpu_model": "cpu", "cores_usable": 2, "memory_gib": 8, "onnxruntime": "1",
                    "opencv": "5", "faiss": "1"},
        "sections": {"footage": {"modes": modes, "targets": targets(modes)}, "batch": {"error": "ValueError: x"}},
    })
    assert "**preliminary, loaded machine**" in report
    assert "## batch: FAILED" in report and "## Footage" in report
