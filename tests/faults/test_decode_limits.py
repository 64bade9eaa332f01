"""Attack: image bombs, a few bytes that declare a huge image, against the CLI as a user runs it.

Each bomb is written as an attacker would write it (a 1 KB RLE BMP declaring
16000×16000, and the same declaration in GIF, TIFF, WebP and PNM headers).
Before the decode limit, `search` on the BMP decoded it (768 MB) and ran the
detector on it: 1.65 GB peak RSS, 24 s. Now every decode is refused from the
header: exit 2, one line, and the process stays at its baseline.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from tests.cli.runner import EXE, run
from tests.test_images import bomb

pytestmark = pytest.mark.faults


def rle_bmp(w: int, h: int) -> bytes:
    """8-bit RLE BMP whose pixel data is only "end of bitmap": the decoder allocates w×h×3 and succeeds."""
    palette = bytes(256 * 4)
    rle = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(rle), 0, 0, offset)
    header += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(rle), 0, 0, 256, 0)
    return header + palette + rle


def run_measured(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run the CLI in a fresh parent that reports the peak RSS (bytes) of its one child."""
    code = ("import json, resource, subprocess, sys; "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr, "
            "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))")
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    outer = subprocess.run([sys.executable, "-c", code, str(EXE), *args], capture_output=True, text=True, env=full,
                           timeout=300)
    data = json.loads(outer.stdout)
    return subprocess.CompletedProcess(args, data["rc"], data["out"], data["err"]), data["rss"]


@pytest.fixture
def cli_env(tmp_path, weights_dir):
    return {"FACEID_JOBS_STORE": str(tmp_path / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
            "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json")}


@pytest.mark.models
def test_search_refuses_a_bmp_bomb_before_decoding_it(tmp_path, cli_env):
    photo = tmp_path / "ross.bmp"
    photo.write_bytes(rle_bmp(16000, 16000))
    assert photo.stat().st_size < 1200
    result, rss = run_measured(["search", str(photo)], cli_env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert str(photo) in line and "image too large" in line and "max_image_pixels" in line
    assert "Traceback" not in result.stderr
    assert rss < 600 << 20, f"peak RSS {rss >> 20} MiB: the bomb was decoded"


@pytest.mark.parametrize("fmt", ["gif", "tiff", "webp", "ppm"])
def test_verify_refuses_bombs_of_every_format(tmp_path, cli_env, fmt):
    photo = tmp_path / f"visitor.{fmt}"
    photo.write_bytes(bomb(fmt, 16000, 16000))
    result = subprocess.run([str(EXE), "verify", str(photo), "--identity", "Ross"], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | cli_env,
                            timeout=300)
    assert result.returncode == 2 and "image too large" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.models
def test_enroll_from_a_folder_leaves_the_bomb_out_and_enrolls_the_rest(tmp_path, cli_env, portraits):
    people = tmp_path / "people"
    people.mkdir()
    (people / "Ross.png").write_bytes(portraits["Ross"].read_bytes())
    (people / "Mallory.bmp").write_bytes(rle_bmp(16000, 16000))
    assert run(["keys", "init"], cli_env).returncode == 0  # enroll never makes a key
    result, rss = run_measured(["enroll", "--from-dir", str(people), "--json"], cli_env)
    assert result.returncode == 2, result.stderr
    data = json.loads(result.stdout)
    assert [e["name"] for e in data["enrolled"]] == ["Ross"]
    [failure] = data["failures"]
    assert failure["name"] == "Mallory" and "image too large" in failure["error"]
    assert rss < 600 << 20, f"peak RSS {rss >> 20} MiB"


def mjpeg_bomb(path, size: int = 8000, frames: int = 2):
    """An MJPEG AVI of `frames` flat `size`×`size` frames (about 0.8 MB for 8000×8000)."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 4, (size, size), False)
    frame = np.full((size, size), 128, np.uint8)
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


def test_probe_refuses_frames_above_max_video_pixels_before_decoding(tmp_path):
    from faceid_jobs.errors import VideoTooLargeError
    from faceid_jobs.video import probe_video

    video = mjpeg_bomb(tmp_path / "big.avi", 2000, 1)
    with pytest.raises(VideoTooLargeError, match=r"big\.avi: video too large \(2000×2000 frames.*max_video_pixels"):
        probe_video(video, max_pixels=3_000_000)
    assert probe_video(video, max_pixels=4_000_000).width == 2000


@pytest.mark.models
def test_process_refuses_an_8000x8000_mjpeg_and_goes_on_with_the_others(tmp_path, cli_env, friends_clip):
    """Before the limit, `process` of this video peaked at 894 MB RSS (1.1 GB reported in issue 15)."""
    from tests.cli.runner import cut_clip

    big = mjpeg_bomb(tmp_path / "big.avi")
    assert big.stat().st_size < 2 << 20
    result, rss = run_measured(["process", str(big), "--no-index"], cli_env)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if str(big) in line]
    assert len(lines) == 1 and "video too large (8000×8000 frames" in lines[0] and "max_video_pixels" in lines[0]
    assert "Traceback" not in result.stderr
    assert rss < 400 << 20, f"peak RSS {rss >> 20} MiB: frames were decoded"
    # With another video in the same run: that one is processed, the big one is the run's one failure.
    small = cut_clip(friends_clip, tmp_path / "small.mp4", 1.0)
    result = subprocess.run([str(EXE), "process", str(big), str(small), "--json", "--sample-fps", "2"],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | cli_env)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    [failure] = summary["failures"]
    assert str(big) in failure["error"] and "max_video_pixels" in failure["error"]
    assert summary["chunks"]["done"] >= 1 and summary["chunks"]["failed"] == 0
