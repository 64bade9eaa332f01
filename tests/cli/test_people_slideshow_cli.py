"""People discovery on a slideshow of labelled photos, run as a user does (`process`, then `people`):
every person's photos end up in one person id and no person id mixes two people."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli.runner import run

pytestmark = pytest.mark.models

FPS = 10  # frames per second of the slideshow; each photo is one second
SIZE = (640, 480)


def _letterbox(image: np.ndarray) -> np.ndarray:
    w, h = SIZE
    scale = min(w / image.shape[1], h / image.shape[0])
    small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    frame = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    return frame


def single_person_photos(media: Path) -> list[tuple[Path, str]]:
    """(photo, who) for every photo of ../shared/media/people holding one person (README there)."""
    items = [(p, p.parent.name) for p in sorted((media / "people" / "train").glob("*/*.jp*g"))]
    tests = {"obama1": "obama", "alex_lacamoire1": "alex_lacamoire", "johnsnow_test1": "kit_harington"}
    return items + [(media / "people" / "test" / f"{k}.jpg", v) for k, v in tests.items()]


def slideshow(photos: list[tuple[Path, str]], target: Path, passes: int = 2, seed: int = 7) -> list[str]:
    """Each photo shown one second per pass, in a seeded random order per pass; returns who each second shows."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    frames = {p: _letterbox(cv2.imread(str(p))) for p, _ in photos}
    shown = []
    for _ in range(passes):
        for i in rng.permutation(len(photos)):
            path, who = photos[i]
            for _ in range(FPS):
                writer.write(frames[path])
            shown.append(who)
    writer.release()
    return shown


def test_slideshow_people_are_one_id_each_and_never_mixed(media_dir, weights_dir, tmp_path):
    photos = single_person_photos(media_dir)
    assert len(photos) == 12 and len({w for _, w in photos}) == 5
    shown = slideshow(photos, tmp_path / "slideshow.mp4")
    # A short appearance gap: one appearance per track, so its span stays within the slides it was seen on.
    env = {"FACEID_JOBS_STORE": str(tmp_path / "store"), "FACEID_JOBS_KEY_FILE": str(tmp_path / "key.json"),
           "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "FACEID_JOBS_APPEARANCE_GAP_S": "0.1"}
    res = run(["process", tmp_path / "slideshow.mp4", "--sample-fps", "2"], env)
    assert res.returncode == 0, res.stderr
    res = run(["people", "--json", "--min-faces", "1"], env)
    assert res.returncode == 0, res.stderr
    people = json.loads(res.stdout)["people"]

    who_of_id: dict[str, set[str]] = {}
    seen_slides: set[int] = set()
    for p in people:
        for a in p["appearances"]:
            slides = range(round(a["start_s"] * FPS) // FPS, round(a["end_s"] * FPS) // FPS + 1)
            who_of_id.setdefault(p["id"], set()).update(shown[s] for s in slides)
            seen_slides.update(slides)
    assert seen_slides == set(range(len(shown))), "a photo's face was not found"
    mixed = {pid: who for pid, who in who_of_id.items() if len(who) > 1}
    assert not mixed, mixed
    ids_of: dict[str, set[str]] = {}
    for pid, who in who_of_id.items():
        ids_of.setdefault(next(iter(who)), set()).add(pid)
    assert set(ids_of) == set(shown)
    split = {who: ids for who, ids in ids_of.items() if len(ids) > 1}
    assert not split, split
