import io
import os

import pytest

from faceid_jobs.crypto.stream import SegmentWriter, open_sealed, read_container, seal
from faceid_jobs.errors import IntegrityError

KEY = bytes(range(32))
SEG = 64
HEADER_FIELDS = {"shard_id": "s1", "created_version": 3}


def key_for(_header):
    return KEY


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG, 5 * SEG + 7])
def test_round_trip_any_size(size):
    data = os.urandom(size)
    blob = seal(data, KEY, HEADER_FIELDS, segment_size=SEG)
    assert open_sealed(blob, key_for, "x", HEADER_FIELDS) == data
    # A plaintext of a few random bytes turns up somewhere in any blob by chance (1 byte: ~40 %).
    assert data not in blob or size < 8


def test_streaming_writer_in_pieces_equals_whole():
    data = os.urandom(1000)
    buf = io.BytesIO()
    w = SegmentWriter(buf, KEY, HEADER_FIELDS, segment_size=SEG)
    for i in range(0, 1000, 37):
        w.write(data[i:i + 37])
    w.close()
    assert b"".join(read_container(io.BytesIO(buf.getvalue()), key_for, "x")) == data


def blob_and_layout(n_segments=4):
    data = os.urandom(SEG * n_segments - 5)
    blob = seal(data, KEY, HEADER_FIELDS, segment_size=SEG)
    first = len(blob) - (n_segments - 1) * (SEG + 16) - (SEG - 5 + 16)
    return data, blob, first


def test_bit_flip_anywhere_is_detected():
    _, blob, first = blob_and_layout()
    for pos in (first + 3, first + SEG + 20, len(blob) - 1, 10):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            open_sealed(bytes(bad), key_for, "shard.bin")


@pytest.mark.parametrize("cut", ["segment", "partial", "header"])
def test_truncation_is_detected(cut):
    _, blob, first = blob_and_layout()
    end = {"segment": len(blob) - (SEG - 5 + 16), "partial": len(blob) - 3, "header": first - 2}[cut]
    with pytest.raises(IntegrityError, match="truncated|fails|damaged"):
        open_sealed(blob[:end], key_for, "shard.bin")


def test_reordered_segments_are_detected():
    _, blob, first = blob_and_layout()
    s = SEG + 16
    segs = [blob[first + i * s: first + (i + 1) * s] for i in range(3)]
    swapped = blob[:first] + segs[1] + segs[0] + segs[2] + blob[first + 3 * s:]
    with pytest.raises(IntegrityError, match="segment 0"):
        open_sealed(swapped, key_for, "shard.bin")


def test_wrong_key_and_moved_container_are_detected():
    _, blob, _ = blob_and_layout()
    with pytest.raises(IntegrityError):
        open_sealed(blob, lambda h: bytes(32), "shard.bin")
    with pytest.raises(IntegrityError, match="created_version"):
        open_sealed(blob, key_for, "shard.bin", {"shard_id": "s1", "created_version": 4})
    # Editing the plaintext header to claim another version breaks every tag.
    forged = blob.replace(b'"created_version":3', b'"created_version":4')
    assert forged != blob
    with pytest.raises(IntegrityError, match="fails authentication"):
        open_sealed(forged, key_for, "shard.bin", {"shard_id": "s1", "created_version": 4})


def test_not_a_container():
    with pytest.raises(IntegrityError, match="not an encrypted"):
        open_sealed(b"PAR1 plain parquet", key_for, "x")
