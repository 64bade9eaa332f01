"""`faceid-jobs people --html` as a user runs it, opened in a real headless Chromium: one row per person
with the best face, counts, first and last seen and a strip of faces from both videos; nothing fetched."""

from __future__ import annotations

import json
import re
from html import unescape

import cv2
import pytest

from tests.cli.runner import cut_clip, run
from tests.friends import SHOTS
from tests.web.test_report import REMOTE, _chromium, _image_counts, chromium  # noqa: F401 (fixture)

pytestmark = pytest.mark.models


def test_people_html_renders_offline_with_a_row_per_person(chromium, friends_clip, weights_dir,  # noqa: F811
                                                           tmp_path):
    # Phoebe and Ross face the camera in shots 3 and 5: two videos, the same two people.
    videos = [cut_clip(friends_clip, tmp_path / "shot3.mp4", 2.5, start_frame=SHOTS[3][0]),
              cut_clip(friends_clip, tmp_path / "shot5.mp4", 2.5, start_frame=SHOTS[5][0])]
    env = {"FACEID_JOBS_STORE": str(tmp_path / "store"), "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json"),
           "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu"}
    res = run(["process", *videos, "--sample-fps", "2"], env)
    assert res.returncode == 0, res.stderr
    page = tmp_path / "people.html"
    res = run(["people", "--json", "--html", page], env)
    assert res.returncode == 0, res.stderr
    people = json.loads(res.stdout)["people"]
    both = [p for p in people if p["videos"] == 2]
    assert len(both) >= 2, [(p["id"], p["faces"], p["videos"]) for p in people]  # Phoebe and Ross

    html = page.read_text()
    assert not REMOTE.search(html) and "default-src 'none'" in html
    dom = _chromium(chromium, page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    rows = re.findall(r"<article class=\"person\" id=\"(P\d{6})\">(.*?)</article>", text, re.S)
    assert [r[0] for r in rows] == [p["id"] for p in people]  # one row per person, in the listing's order
    for (pid, row), p in zip(rows, people, strict=True):
        assert row.count('class="crop"') == 1, pid  # the best face
        assert f"{p['faces']} faces" in row and f"{len(p['appearances'])} appearances" in row
        plain = unescape(re.sub(r"<[^>]+>", " ", row))
        assert f"{p['first_seen']['video']} at" in plain and f"{p['last_seen']['video']} at" in plain
        strip = re.search(r'<div class="strip">(.*?)</div>', row, re.S).group(1)
        alts = re.findall(r'class="face" src="data:image/jpeg;base64,[^"]+" alt="([^"]+)"', strip)
        assert len(alts) == min(8, len(p["appearances"])), pid
        if p["videos"] == 2:  # the strip shows faces of both videos
            assert {str(v) for v in videos} <= {a.rsplit(" at ", 1)[0] for a in alts}, alts
    total, broken = _image_counts(text)
    assert broken == 0 and total == sum(1 + min(8, len(p["appearances"])) for p in people)

    shot = tmp_path / "people.png"
    res = _chromium(chromium, page, tmp_path, f"--screenshot={shot}")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    png = cv2.imread(str(shot))
    assert png is not None and png.shape[1] == 1280
    # The first row's best face sits below the header on the left: a picture, not the flat page.
    assert float(png[100:400, 40:300].std()) > 20.0
    assert float(png.std()) > 10.0
