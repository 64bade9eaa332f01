"""Test clips with turned frames: sideways without metadata, or sideways with a display matrix.

The display matrix is written into the MP4's `tkhd` box by hand (the one
place FFmpeg reads a track's rotation from), so the tests need neither the
ffmpeg binary nor PyAV.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turned_clip(source: Path, target: Path, seconds: float, degrees: int, start_frame: int = 0) -> Path:
    """Re-encode `seconds` of `source` (mp4v) with every frame turned `degrees` clockwise, no metadata."""
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start_frame)
    writer = None
    for _ in range(int(seconds * fps)):
        ok, frame = cap.read()
        if not ok:
            break
        frame = cv2.rotate(frame, _ROTATE[degrees])
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(frame)
    cap.release()
    assert writer is not None, f"no frames read from {source}"
    writer.release()
    return target


def _boxes(data: bytes | bytearray, start: int, end: int):
    """(type, offset, header size, size) of the ISO-BMFF boxes in data[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        yield kind, i, header, size
        i += size


def set_display_rotation(path: Path, degrees: int) -> Path:
    """Write a display matrix telling players to turn the video track `degrees` clockwise.

    The matrix is the one phones write (rotation about the origin, no
    translation: FFmpeg reads only the rotation part); OpenCV reports it as
    `CAP_PROP_ORIENTATION_META` and applies it while decoding.
    """
    one = 1 << 16
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    matrix = (cos * one, sin * one, 0, -sin * one, cos * one, 0, 0, 0, 1 << 30)
    data = bytearray(path.read_bytes())
    patched = 0
    for kind, i, header, size in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for kind2, j, header2, size2 in _boxes(data, i + header, i + size):
            if kind2 != b"trak":
                continue
            for kind3, k, _header3, _size3 in _boxes(data, j + header2, j + size2):
                if kind3 == b"tkhd":
                    # version 0: 20 bytes of times and ids, version 1: 32; then 16 reserved/layer/volume bytes.
                    offset = k + 12 + (32 if data[k + 8] == 1 else 20) + 16
                    data[offset:offset + 36] = struct.pack(">9i", *matrix)
                    patched += 1
    assert patched == 1, f"{path}: expected one track header, found {patched}"
    path.write_bytes(data)
    return path
