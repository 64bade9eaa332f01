"""People discovery on real faces, run as a user does: a photo slideshow (every person's photos in one person,
no person mixing two), its HTML contact sheet in headless Chromium, and the Friends clip (the six characters)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from bench.people import (
    faces_by_person,
    labelled_faces,
    pair_accuracy,
    people_photos,
    portrait_labels,
    portrait_purity,
    portrait_vectors,
    slideshow,
)
from faceid_jobs.config import Settings
from faceid_jobs.storage import LocalStore
from faceid_jobs.workspace import open_workspace
from tests.cli.runner import run
from tests.friends import EDGE, SHOTS, absent_shots, shot_of
from tests.web.test_report import REMOTE, _chromium, _image_counts, chromium  # noqa: F401 (a fixture)

pytestmark = pytest.mark.models

FPS = 10.0  # slideshow frame rate: photo i is frames 10·i … 10·i + 9


class Archive:
    """A store processed by `faceid-jobs process`, and how to run `faceid-jobs` on it."""

    def __init__(self, root: Path, weights_dir: Path):
        self.root, self.store, self.key = root, root / "store", root / "key.json"
        self.env = {"FACEID_JOBS_KEY_FILE": str(self.key), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
                    "FACEID_JOBS_DEVICE": "cpu"}

    def run(self, *args):
        res = run([*args, "--store", self.store], self.env)
        assert res.returncode == 0, res.stderr[-2000:]
        return res

    def people(self, min_faces: int) -> list[dict]:
        return json.loads(self.run("people", "--json", "--min-faces", min_faces).stdout)["people"]

    def faces(self) -> list[dict]:
        ws = open_workspace(Settings(key_file=str(self.key)), store=LocalStore(self.store))
        return faces_by_person(ws)


@pytest.fixture(scope="module")
def slides(tmp_path_factory, weights_dir):
    """Two slideshows of the twelve one-person photos (2–3 per person), each in its own seeded order."""
    root = tmp_path_factory.mktemp("slides")
    photos = people_photos()
    shown = {}
    for name, seed in (("slides_a.mp4", 1), ("slides_b.mp4", 2)):
        shown[str(root / name)] = slideshow(photos, root / name, seed=seed, fps=FPS)
    archive = Archive(root, weights_dir)
    archive.run("process", *shown, "--sample-fps", "2")
    return archive, shown, {who for _, who in photos}


def test_slideshow_every_persons_photos_are_one_person_and_no_person_mixes_two(slides):
    archive, shown, names = slides
    listed = archive.people(1)
    persons_of, names_of = defaultdict(set), defaultdict(set)
    for f in archive.faces():
        who = shown[f["video"]][f["frame"]]
        persons_of[who].add(f["person"])
        names_of[f["person"]].add(who)
    assert set(persons_of) == names, "a face of every person was found"
    assert {who: len(p) for who, p in persons_of.items()} == dict.fromkeys(names, 1), persons_of
    assert all(len(n) == 1 for n in names_of.values()), names_of
    # What the user sees: one listed person per name, each appearance within photos of that name only.
    assert {p["id"] for p in listed} == set(names_of) and len(listed) == len(names)
    for p in listed:
        (who,) = names_of[p["id"]]
        assert p["videos"] == 2
        for a in p["appearances"]:
            frames = range(round(a["start_s"] * FPS), round(a["end_s"] * FPS) + 1)
            assert {shown[a["video"]][i] for i in frames} == {who}, (p["id"], a)


def test_people_html_renders_offline_in_headless_chromium(slides, chromium, tmp_path):  # noqa: F811
    archive, _, names = slides
    listed = archive.people(1)
    page_path = tmp_path / "people.html"
    res = archive.run("people", "--html", page_path, "--min-faces", "1")
    assert f"wrote {page_path}" in res.stderr
    page = page_path.read_text()
    assert "default-src 'none'" in page and not REMOTE.search(page), REMOTE.search(page)
    assert all(src.startswith("data:image/jpeg;base64,") for src in re.findall(r"src='([^']*)'", page))
    articles = re.findall(r"<article class='person' id='(P\d+)'>(.*?)</article>", page, re.S)
    assert [a[0] for a in articles] == [p["id"] for p in listed] and len(articles) == len(names)
    for (pid, body), p in zip(articles, listed, strict=True):
        assert "<img class='crop'" in body, pid  # the best face
        assert f"{p['faces']} faces" in body and f"{len(p['appearances'])} appearances" in body
        assert "first seen" in body and "last seen" in body
        strip = re.search(r"<div class='strip'>(.*?)</div>", body, re.S).group(1)
        assert {"slides_a.mp4", "slides_b.mp4"} <= set(re.findall(r"alt='[^']*/(slides_[ab]\.mp4) at", strip)), pid

    dom = _chromium(chromium, page_path, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _image_counts(dom.stdout) == (page.count("<img "), 0)  # every picture decoded
    shot = tmp_path / "people.png"
    done = _chromium(chromium, page_path, tmp_path, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    png = cv2.imread(str(shot))
    assert png is not None and png.shape[1] == 1280
    # The first person's row: faces there, not a flat background.
    assert float(png[80:400, :].std()) > 20.0


@pytest.mark.slow
def test_friends_each_character_is_one_person_and_no_person_mixes_two(tmp_path, weights_dir, friends_clip,
                                                                       models, media_dir):
    archive = Archive(tmp_path, weights_dir)
    archive.run("process", friends_clip, "--sample-fps", "4")
    listed = archive.people(3)
    names, portraits = portrait_vectors(models, media_dir / "friends" / "faces")
    faces = archive.faces()
    purity = portrait_purity(faces, names, portraits, min_faces=3)
    assert set(purity["people"]) == {p["id"] for p in listed}
    assert purity["split"] == [] and purity["missing"] == [], purity
    assert sorted(purity["majority"].values()) == sorted(names)
    assert purity["impure_faces"] == 0, purity["people"]
    # The rest (a head at the frame edge, seen from behind) is nobody's: no portrait within min_cos.
    assert all(set(c) == {"-"} for p, c in purity["people"].items() if p not in purity["majority"])

    # Against the shot table: each character's person holds faces only from shots where that character faces the
    # camera (their hard profile shot included) or is cut off at the frame edge (`EDGE`).
    for pid, name in purity["majority"].items():
        shots = {shot_of(f["frame"]) for f in faces if f["person"] == pid}
        assert not shots & absent_shots(name), (pid, name, sorted(shots))

    # Labelled photo pairs: each face labelled by its portrait where that is clear (the labels agree with the
    # shot table), every pair of labelled faces decided by "same person id".
    labels = portrait_labels(np.stack([f["embedding"] for f in faces]), portraits, names)
    wrong = [(m, f["frame"]) for m, f in zip(labels, faces, strict=True) if m is not None
             and m not in SHOTS[shot_of(f["frame"])][2] and (m, shot_of(f["frame"])) not in EDGE]
    assert len(wrong) <= 0.02 * len(faces), wrong
    # The faces the bench judges (clear labels the shot table allows): right >= 97 %, and at least as often as
    # plain average linkage of the same faces at the same cosine cut (`bench.people friends`: 97.2 % at 0.4).
    known, truth = labelled_faces(faces, names, portraits)
    assert len(known) >= 150
    person = np.asarray([f["person"] for f in faces])
    ours = pair_accuracy(person[known], truth)
    tree = linkage(np.stack([f["embedding"] for f in faces]).astype(np.float64), method="average", metric="cosine")
    plain = pair_accuracy(fcluster(tree, 1 - Settings().people_threshold, criterion="distance")[known], truth)
    assert ours >= 0.97 and ours >= plain, (ours, plain)
