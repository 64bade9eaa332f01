"""Read photos into BGR arrays (I/O: reads one file), refusing image bombs before decoding.

EXIF orientation is applied (OpenCV does this for JPEG), alpha is dropped,
grayscale and 16-bit images become 8-bit BGR.

**Decode limit.** A few bytes can declare a huge image (a 1 KB BMP declaring
16000×16000 makes the decoder allocate 768 MB, more as it converts). Before
anything is decoded, `image_size` reads the width and height from the
header of JPEG, PNG, WebP, BMP, TIFF, GIF and PNM files (the formats a photo
comes in); an image above `max_image_pixels` (the setting, 50 MP) is refused
(`ImageTooLargeError`: exit 2, HTTP 413), and so is any other format, whose
size cannot be told without decoding it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from faceid_jobs.errors import ImageTooLargeError, PhotoError

__all__ = ["MAX_IMAGE_PIXELS", "MAX_PHOTO_BYTES", "decode_photo", "image_size", "read_photo"]

# Far above any real photo; keeps a hostile file from exhausting memory.
MAX_PHOTO_BYTES = 256 << 20
# Default of the `max_image_pixels` setting (a 50-megapixel photo is 150 MB as BGR).
MAX_IMAGE_PIXELS = 50_000_000


def read_photo(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Load an image file as an (h, w, 3) uint8 BGR array.

    Raises:
        PhotoError: missing, unreadable, too large, or not a decodable image.
        ImageTooLargeError: the header declares more than `max_pixels` pixels.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise PhotoError(f"{p}: is a directory, not an image")
        size = p.stat().st_size
        if size > MAX_PHOTO_BYTES:
            raise PhotoError(f"{p}: file too large for a photo ({size >> 20} MiB)")
        data = p.read_bytes()
    except FileNotFoundError:
        raise PhotoError(f"{p}: file not found") from None
    except PermissionError:
        raise PhotoError(f"{p}: permission denied") from None
    except OSError as exc:
        raise PhotoError(f"{p}: cannot read ({exc.strerror})") from None
    return decode_photo(data, str(p), max_pixels)


def decode_photo(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode image bytes to (h, w, 3) uint8 BGR, or raise PhotoError naming `name`.

    Raises:
        PhotoError: empty, not an image, or a format whose size cannot be read from its header.
        ImageTooLargeError: the header declares more than `max_pixels` pixels.
    """
    if not data:
        raise PhotoError(f"{name}: empty file")
    size = image_size(data)
    if size is None:
        raise PhotoError(f"{name}: not a readable image (JPEG, PNG, WebP, BMP, TIFF, GIF or PNM expected)")
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{name}: image too large ({width}×{height} = {width * height / 1e6:.0f} "
                                 f"megapixels, at most {max_pixels / 1e6:g}: max_image_pixels)")
    buf = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise PhotoError(f"{name}: not a readable image")
    return np.ascontiguousarray(image)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, WebP, BMP, TIFF, GIF or PNM image; None otherwise.

    Nothing is decoded. A header that cannot be read (truncated, unknown
    format) gives None.

    Example:
        >>> image_size(b"BM" + bytes(16) + struct.pack("<ii", 16000, -16000))
        (16000, 16000)
    """
    try:
        for reader in (_png, _jpeg, _webp, _bmp, _tiff, _gif, _pnm):
            size = reader(data)
            if size is not None:
                return size
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png(d: bytes) -> tuple[int, int] | None:
    if d[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", d[16:24]) if d[12:16] == b"IHDR" else None


def _jpeg(d: bytes) -> tuple[int, int] | None:
    if d[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(d):
        if d[i] != 0xFF:
            i += 1
            continue
        marker = d[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", d[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", d[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _webp(d: bytes) -> tuple[int, int] | None:
    if d[:4] != b"RIFF" or d[8:12] != b"WEBP":
        return None
    chunk = d[12:16]
    if chunk == b"VP8X":  # canvas size, 24-bit little-endian minus one
        return int.from_bytes(d[24:27], "little") + 1, int.from_bytes(d[27:30], "little") + 1
    if chunk == b"VP8L" and d[20] == 0x2F:
        bits = int.from_bytes(d[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and d[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", d[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _bmp(d: bytes) -> tuple[int, int] | None:
    if d[:2] != b"BM":
        return None
    header = struct.unpack("<I", d[14:18])[0]
    if header == 12:  # BITMAPCOREHEADER
        return struct.unpack("<HH", d[18:22])
    w, h = struct.unpack("<ii", d[18:26])
    return abs(w), abs(h)  # a negative height is a top-down bitmap


def _tiff(d: bytes) -> tuple[int, int] | None:
    if d[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    e = "<" if d[:2] == b"II" else ">"
    offset = struct.unpack(e + "I", d[4:8])[0]
    count = struct.unpack(e + "H", d[offset:offset + 2])[0]
    found: dict[int, int] = {}
    for k in range(count):
        tag, kind, _, value = struct.unpack(e + "HHI4s", d[offset + 2 + 12 * k:offset + 14 + 12 * k])
        if tag in (256, 257):
            found[tag] = struct.unpack(e + "H", value[:2])[0] if kind == 3 else struct.unpack(e + "I", value)[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _gif(d: bytes) -> tuple[int, int] | None:
    if d[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    return struct.unpack("<HH", d[6:10])


def _pnm(d: bytes) -> tuple[int, int] | None:
    if len(d) < 2 or d[0:1] != b"P" or d[1:2] not in b"123456":
        return None
    fields: list[int] = []
    for line in d[2:4096].split(b"\n"):
        for token in line.split(b"#")[0].split():
            fields.append(int(token))
            if len(fields) == 2:
                return fields[0], fields[1]
    return None
