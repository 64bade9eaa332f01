"""The HTML report: crops read back from the video, placeholders for a missing one, and a real
headless Chromium that renders it with every picture decoded and nothing fetched."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import StoreError, VideoError, VideoTooLargeError
from faceid_jobs.web.report import read_frames, render_report, search_report, write_report

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory) -> Path:
    """64 frames of 160×120, frame i a flat grey of 3·i (so a frame's number can be read back)."""
    path = tmp_path_factory.mktemp("numbered") / "numbered.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    for i in range(64):
        writer.write(np.full((120, 160, 3), 3 * i, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("frames", [[0, 1, 2], [40, 5, 63], [10, 10, 11, 60, 61], [3, 200]])
def test_read_frames_returns_exactly_the_asked_frames(numbered_video, frames):
    got = read_frames(str(numbered_video), frames)
    assert set(got) == {f for f in frames if f < 64}  # a frame past the end is left out
    for f, image in got.items():
        assert abs(float(image.mean()) - 3 * f) < 2.0, f


def test_read_frames_refuses_frames_above_max_video_pixels(numbered_video):
    with pytest.raises(VideoTooLargeError, match="160×120 frames"):
        read_frames(str(numbered_video), [0], max_pixels=160 * 120 - 1)
    assert set(read_frames(str(numbered_video), [0], max_pixels=160 * 120)) == {0}


def test_read_frames_of_a_missing_video_raises(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        read_frames(str(tmp_path / "gone.mp4"), [0])


def _hit(video, frame=10, similarity=0.5, **extra):
    return {"video": str(video), "frame": frame, "timestamp_s": frame / 25, "bbox": [40, 30, 100, 100],
            "similarity": similarity, "liveness": 0.9, "quality": 0.7, **extra}


def test_hits_are_grouped_by_video_and_sorted_and_a_missing_video_gets_a_placeholder(numbered_video, tmp_path):
    gone = tmp_path / "moved-away.mp4"
    hits = [_hit(numbered_video, 5, 0.45), _hit(gone, 7, 0.8, identity="Ross"),
            _hit(numbered_video, 20, 0.7, start_s=0.5, end_s=1.5, track_id=3)]
    page = render_report("find: <Ross>", hits)
    # Best video first (the missing one holds the 0.8 hit), hits by similarity inside a video.
    assert page.index("moved-away.mp4") < page.index("numbered.avi")
    assert page.index("#2") < page.index("#3")
    assert "Video not available at report time" in page and "file not found" in page
    assert "1 of 2 videos could not be read now" in page
    assert page.count("class='ph crop'") == 1 and page.count("class='crop'") == 2
    assert "find: &lt;Ross&gt;" in page and "<Ross>" not in page  # escaped
    assert "00:00.5 – 00:01.5" in page and "Ross" in page


def test_write_report_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot write the report"):
        write_report(tmp_path / "no" / "such" / "r.html", "<html></html>")


REMOTE = re.compile(r"""(?:https?:|ftp:|wss?:)//|(?:src|href|action|poster)\s*=\s*["']?\s*//|@import|"""
                    r"""url\(\s*["']?(?!data:)|<link\b|<iframe\b|<object\b|<embed\b""", re.I)


def test_report_has_no_remote_reference(search_for, portraits, tmp_path):
    image, result = search_for(portraits["Ross"])
    page = search_report(result, image, threshold=0.4)
    assert not REMOTE.search(page), REMOTE.search(page)
    assert all(src.startswith("data:image/jpeg;base64,") for src in re.findall(r"src='([^']*)'", page))
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing


# ---------------------------------------------------------------- real browser


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "chromium not installed (apt-get install chromium; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return exe


def _chromium(exe: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,2000", *extra, page.as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _image_counts(dom: str) -> tuple[int, int]:
    total = re.search(r'data-images-total="(\d+)"', dom)
    broken = re.search(r'data-images-broken="(\d+)"', dom)
    assert total and broken, "the page's load script did not run:\n" + dom[:500]
    return int(total.group(1)), int(broken.group(1))


@pytest.mark.models
def test_report_renders_in_headless_chromium_with_every_picture(chromium, search_for, portraits, tmp_path):
    image, result = search_for(portraits["Ross"])
    assert result.hits, "Ross is in shot 3"
    missing = _hit(tmp_path / "deleted.mp4", 3, 0.41)
    # The search's hits and one more from a deleted video: a placeholder, not a broken picture.
    page = render_report("Search: Ross.png", [*result.hits, missing], query_image=image,
                         query_bbox=result.query.bbox, details={"photo": "Ross.png"})
    path = write_report(tmp_path / "report.html", page)

    dom = _chromium(chromium, path, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    total, broken = _image_counts(dom.stdout)
    # query photo + crop and frame per readable hit; the deleted video's hit has none.
    assert (total, broken) == (1 + 2 * len(result.hits), 0)
    assert "Video not available at report time" in dom.stdout

    shot = tmp_path / "report.png"
    run = _chromium(chromium, path, tmp_path, f"--screenshot={shot}")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    png = cv2.imread(str(shot))
    assert png is not None and png.shape[1] == 1280
    # The query photo sits top left: real picture content there, not a flat background.
    assert float(png[100:400, 60:420].std()) > 20.0

    # The check itself works: a picture that cannot decode is counted as broken.
    bad = write_report(tmp_path / "bad.html", page.replace("<footer>", "<img src='data:image/jpeg;base64,AAAA'>"
                                                             "<footer>"))
    total, broken = _image_counts(_chromium(chromium, bad, tmp_path, "--dump-dom").stdout)
    assert broken == 1
