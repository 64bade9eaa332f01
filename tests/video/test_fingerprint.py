import os

import pytest

from faceid_jobs.video.fingerprint import video_fingerprint


@pytest.mark.parametrize("size", [0, 10, 3 << 20, (5 << 20) + 123])
@pytest.mark.parametrize("mode", ["sampled", "full"])
def test_same_bytes_same_fingerprint_any_name(tmp_path, size, mode):
    data = os.urandom(size)
    a, b = tmp_path / "a.mp4", tmp_path / "sub" / "renamed.mkv"
    b.parent.mkdir()
    a.write_bytes(data)
    b.write_bytes(data)
    fa = video_fingerprint(a, mode)
    assert fa == video_fingerprint(b, mode)
    assert fa.startswith("s1-" if mode == "sampled" else "f1-")


@pytest.mark.parametrize("mode", ["sampled", "full"])
@pytest.mark.parametrize("edit", ["head", "tail", "append"])
def test_changed_file_changes_fingerprint(tmp_path, mode, edit):
    data = bytearray(os.urandom(4 << 20))
    p = tmp_path / "v.mp4"
    p.write_bytes(data)
    before = video_fingerprint(p, mode)
    if edit == "head":
        data[100] ^= 1
    elif edit == "tail":
        data[-100] ^= 1
    else:
        data += b"x"
    p.write_bytes(data)
    assert video_fingerprint(p, mode) != before


def test_full_mode_sees_middle_edits(tmp_path):
    data = bytearray(os.urandom(8 << 20))
    p = tmp_path / "v.mp4"
    p.write_bytes(data)
    before = video_fingerprint(p, "full")
    data[(3 << 20) + 7] ^= 1  # between sampled blocks
    p.write_bytes(data)
    assert video_fingerprint(p, "full") != before
