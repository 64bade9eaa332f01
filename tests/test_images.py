"""Photo decoding: header sizes of every accepted format, and the decode limit before any decoding (pure)."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import ImageTooLargeError, PhotoError
from faceid_jobs.images import decode_photo, image_size


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tiff", ".ppm"])
def test_image_size_reads_the_header_of_each_format(ext):
    ok, buf = cv2.imencode(ext, np.zeros((30, 50, 3), np.uint8))
    assert ok and image_size(buf.tobytes()) == (50, 30)
    assert decode_photo(buf.tobytes(), "x" + ext).shape == (30, 50, 3)


def bomb(fmt: str, w: int, h: int) -> bytes:
    """A few bytes declaring a w×h image, as an attacker writes them."""
    if fmt == "bmp":
        return b"BM" + struct.pack("<IHHI", 54 + w * h * 3, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, -h, 1, 24,
                                                                                      0, 0, 0, 0, 0, 0) + bytes(900)
    if fmt == "gif":
        return b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + bytes(20)
    if fmt == "tiff":
        entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (277, 3, 1, 1)]
        ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
        return b"II*\x00" + struct.pack("<I", 8) + ifd
    if fmt == "webp":
        size = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
        body = b"VP8X" + struct.pack("<I", 10) + bytes(4) + size
        return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
    if fmt == "ppm":
        return f"P6\n{w} {h}\n255\n".encode() + bytes(100)
    raise ValueError(fmt)


@pytest.mark.parametrize("fmt", ["bmp", "gif", "tiff", "webp", "ppm"])
def test_a_declared_pixel_bomb_is_refused_before_decoding(fmt):
    data = bomb(fmt, 16000, 16000)
    assert image_size(data) == (16000, 16000)
    with pytest.raises(ImageTooLargeError, match="256 megapixels") as exc:
        decode_photo(data, f"bomb.{fmt}")
    assert exc.value.exit_code == 2 and exc.value.http_status == 413 and f"bomb.{fmt}" in str(exc.value)


@pytest.mark.parametrize("blob", [b"<svg></svg>", b"\x00" * 64, b"BM", b"II*\x00\xff\xff\xff\xff"])
def test_formats_whose_size_cannot_be_read_are_refused(blob):
    with pytest.raises(PhotoError, match="not a readable image"):
        decode_photo(blob, "x")
