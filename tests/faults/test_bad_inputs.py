"""Corrupt, odd and hostile inputs: clear errors or correct handling, never a crash or hang."""

from __future__ import annotations

import os
import random

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import FaceIdError, ImageTooLargeError, NoFaceError, PhotoError
from faceid_jobs.images import decode_photo, read_photo
from faceid_jobs.pipeline.process import process_sources
from faceid_jobs.search.query import make_query
from tests.cli.runner import cut_clip

pytestmark = [pytest.mark.faults, pytest.mark.models]


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory, friends_clip):
    return cut_clip(friends_clip, tmp_path_factory.mktemp("good") / "good.mp4", 4.0)


def make_bad_videos(folder, good, friends_clip):
    data = friends_clip.read_bytes()
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "random.mkv").write_bytes(os.urandom(300_000))
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 4])
    # Unsupported codec: the sample entry renamed to a codec no decoder knows.
    (folder / "codec.mp4").write_bytes(data.replace(b"avc1", b"zzz9"))
    middle = bytearray(good.read_bytes())
    rng = random.Random(3)
    for i in range(len(middle) // 3, 2 * len(middle) // 3, 97):
        middle[i] = rng.randrange(256)
    (folder / "middle_corrupt.mp4").write_bytes(bytes(middle))
    # A real video with a misleading name, given explicitly.
    os.link(good, folder / "clip.txt")


def test_bad_videos_are_reported_and_good_ones_processed(tmp_path, good_clip, friends_clip, cpu_settings,
                                                         models, make_workspace):
    make_bad_videos(tmp_path, good_clip, friends_clip)
    settings = cpu_settings.replace(sample_fps=2.0, chunk_seconds=2.0)
    sources = [str(good_clip), str(tmp_path), str(tmp_path / "clip.txt")]
    summary = process_sources(sources, settings, make_workspace(), models)
    failed = {f.video.rsplit("/", 1)[-1] for f in summary.failures}
    assert {"zero.mp4", "random.mkv", "codec.mp4"} <= failed
    for f in summary.failures:
        assert "\n" not in f.error and f.video.rsplit("/", 1)[-1] in f.error
    assert "good.mp4" not in failed and "clip.txt" not in failed
    # The good clip and its renamed copy are one video by content: processed once, then skipped.
    assert summary.chunks_done >= 2 and summary.faces > 0
    assert summary.indexed_vectors and summary.indexed_vectors > 0


def photo_variants(portrait):
    image = cv2.imread(str(portrait))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = 128
    return {
        "gray.png": cv2.imencode(".png", gray)[1].tobytes(),
        "alpha.png": cv2.imencode(".png", bgra)[1].tobytes(),
        "sixteen.png": cv2.imencode(".png", image.astype(np.uint16) * 257)[1].tobytes(),
        "jpeg.jpg": cv2.imencode(".jpg", image)[1].tobytes(),
    }


@pytest.mark.parametrize("name", ["gray.png", "alpha.png", "sixteen.png", "jpeg.jpg"])
def test_photo_formats_find_the_same_face(portraits, models, name):
    base = make_query(read_photo(portraits["Ross"]), "ross", models)
    data = photo_variants(portraits["Ross"])[name]
    q = make_query(decode_photo(data, name), name, models)
    assert float(q.embedding @ base.embedding) > 0.9


def test_exif_rotation_is_applied(media_dir, models):
    image = read_photo(media_dir / "liveness" / "live_1.jpg")
    assert image.shape[:2] == (640, 480)  # stored 640x480 landscape with orientation 6
    q = make_query(image, "live_1.jpg", models)
    x1, y1, x2, y2 = q.face.bbox
    assert (y2 - y1) > 0.8 * (x2 - x1)  # an upright face, not one lying on its side


def test_huge_photo_is_handled(tmp_path, portraits, models):
    image = cv2.imread(str(portraits["Ross"]))
    canvas = np.zeros((12000, 12000, 3), np.uint8)
    big = cv2.resize(image, (image.shape[1] * 8, image.shape[0] * 8))
    canvas[:big.shape[0], :big.shape[1]] = big[:12000, :12000]
    path = tmp_path / "huge.jpg"
    cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 70])
    with pytest.raises(ImageTooLargeError, match="144 megapixels"):  # above max_image_pixels (50 MP)
        read_photo(path)
    q = make_query(read_photo(path, max_pixels=144_000_000), "huge.jpg", models)
    base = make_query(image, "ross", models)
    assert float(q.embedding @ base.embedding) > 0.8


@pytest.mark.parametrize("blob", [b"", b"GIF89a", b"\xff\xd8\xff\xe0" + b"\x00" * 50, b"<svg></svg>"])
def test_not_images(blob):
    with pytest.raises(PhotoError, match="x.jpg"):
        decode_photo(blob, "x.jpg")


def test_fuzzed_photos_never_crash_or_hang(portraits, models):
    """A few hundred mutated JPEG/PNG files through decode → detect → embed."""
    rng = random.Random(11)
    image = cv2.resize(cv2.imread(str(portraits["Phoebe"])), (256, 256))
    seeds = [cv2.imencode(".jpg", image)[1].tobytes(), cv2.imencode(".png", image)[1].tobytes()]
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 20)):
            op = rng.random()
            pos = rng.randrange(len(data))
            if op < 0.6:
                data[pos] = rng.randrange(256)
            elif op < 0.8:
                del data[pos:pos + rng.randint(1, 64)]
            else:
                data[pos:pos] = os.urandom(rng.randint(1, 64))
        try:
            photo = decode_photo(bytes(data), f"fuzz{i}")
        except PhotoError:
            outcomes["refused"] += 1
            continue
        outcomes["decoded"] += 1
        try:
            make_query(photo, f"fuzz{i}", models)
        except NoFaceError:
            pass
        except FaceIdError as exc:
            pytest.fail(f"unexpected error for fuzz{i}: {exc}")
    assert outcomes["decoded"] > 50 and outcomes["refused"] > 10, outcomes
