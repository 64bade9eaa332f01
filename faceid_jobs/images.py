"""Read photos into BGR arrays (I/O: reads one file).

EXIF orientation is applied (OpenCV does this for JPEG), alpha is dropped,
grayscale and 16-bit images become 8-bit BGR.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceid_jobs.errors import PhotoError

__all__ = ["MAX_PHOTO_BYTES", "decode_photo", "read_photo"]

# Far above any real photo; keeps a hostile file from exhausting memory.
MAX_PHOTO_BYTES = 256 << 20


def read_photo(path: str | Path) -> np.ndarray:
    """Load an image file as an (h, w, 3) uint8 BGR array.

    Raises:
        PhotoError: missing, unreadable, too large, or not a decodable image.
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
    return decode_photo(data, str(p))


def decode_photo(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes to (h, w, 3) uint8 BGR, or raise PhotoError naming `name`."""
    if not data:
        raise PhotoError(f"{name}: empty file")
    buf = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise PhotoError(f"{name}: not a readable image")
    return np.ascontiguousarray(image)
