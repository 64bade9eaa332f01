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

from tests.cli.runner import EXE
from tests.test_images import bomb


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
    result, rss = run_measured(["enroll", "--from-dir", str(people), "--json"], cli_env)
    assert result.returncode == 2, result.stderr
    data = json.loads(result.stdout)
    assert [e["name"] for e in data["enrolled"]] == ["Ross"]
    [failure] = data["failures"]
    assert failure["name"] == "Mallory" and "image too large" in failure["error"]
    assert rss < 600 << 20, f"peak RSS {rss >> 20} MiB"
